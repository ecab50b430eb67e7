#!/usr/bin/env bash
# Builds the C++ core unit tests with AddressSanitizer + UndefinedBehaviorSanitizer (no Node
# involved) and runs them. `--tsan` builds with ThreadSanitizer instead.
#
#   npm run test:asan [-- --tsan] [-- FILTER]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=asan
filter=()
for a in "$@"; do
  case "$a" in
    --tsan) mode=tsan ;;
    *) filter+=("$a") ;;
  esac
done
cxx=${CXX:-}
if [ -z "$cxx" ]; then
  if command -v clang++-16 >/dev/null; then cxx=clang++-16; else cxx=g++; fi
fi
if [ "$mode" = tsan ]; then
  san=(-fsanitize=thread)
else
  san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
fi
out="$root/build/$mode"
mkdir -p "$out"
mapfile -t srcs < <(cd "$root" && node scripts/gyp-sources.mjs native/core native/test | tr ' ' '\n')
echo "sanitize: building core tests with $cxx (${san[*]}), ${#srcs[@]} sources" >&2
objs=()
for s in "${srcs[@]}"; do
  o="$out/$(echo "$s" | tr '/' '_').o"
  if [ ! -f "$o" ] || [ "$root/$s" -nt "$o" ] || [ -n "$(find "$root/native" -name '*.h' -newer "$o" -print -quit)" ]; then
    "$cxx" -std=c++20 -g -O1 -fno-omit-frame-pointer "${san[@]}" -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
      -Wall -Wextra -I"$root/native/core" -c "$root/$s" -o "$o" &
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n; done
  fi
  objs+=("$o")
done
wait
"$cxx" "${san[@]}" -o "$out/nydus_core_tests" "${objs[@]}" -llz4 -lzstd -lpthread
echo "sanitize: running $out/nydus_core_tests" >&2
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/native/test/lsan_suppress.txt}
exec "$out/nydus_core_tests" "${filter[@]}"
