#!/usr/bin/env bash
# Builds the C++ core unit tests with AddressSanitizer + UndefinedBehaviorSanitizer (no Node
# involved) and runs them. `--tsan` builds with ThreadSanitizer instead.
#
#   npm run test:asan [-- --tsan] [-- FILTER]
#
# Objects are kept in build/<mode>/ between runs and rebuilt from the compiler's dependency files
# (-MMD): a changed source or any header it includes rebuilds exactly the objects that use it.
# A different compiler or flag set starts the folder over, so nothing stale is ever linked. The
# build runs one compile job per CPU (make -j). Prints how long the build and the run took.
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
# The C compiler of the same family, for the reference BLAKE3 sources (binding.gyp's blake3).
cc=${CC:-}
if [ -z "$cc" ]; then
  case "$cxx" in
    clang++*) cc=${cxx/clang++/clang} ;;
    g++*) cc=${cxx/g++/gcc} ;;
    *) cc=cc ;;
  esac
fi
b3dir=$(cd "$root" && node scripts/blake3-sources.mjs --dir)
read -r -a b3defs <<<"$(cd "$root" && node scripts/blake3-sources.mjs --defines)"
cdefs=""
for d in "${b3defs[@]}"; do cdefs+=" -D$d"; done
if [ "$mode" = tsan ]; then
  san="-fsanitize=thread"
else
  san="-fsanitize=address,undefined -fno-sanitize-recover=all"
fi
flags="-std=c++20 -g -O1 -fno-omit-frame-pointer $san -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -I$root/native/core -I$root/native -I$b3dir"
cflags="-g -O1 -fno-omit-frame-pointer $san$cdefs -I$b3dir"
out="$root/build/$mode"

# A build made with other flags (or another compiler) is thrown away, never reused.
stamp="$cxx $flags | $cc $cflags | $("$cxx" --version | head -1)"
if [ ! -f "$out/flags" ] || [ "$(cat "$out/flags")" != "$stamp" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  printf '%s' "$stamp" >"$out/flags"
fi

# The core, the test-only vhost-user frontend the tests drive the backend with, and the tests;
# the reference BLAKE3 C and assembly files the core's digests call (instrumented too: the C
# files; the assembly reads only what the C code hands it).
mapfile -t srcs < <(cd "$root" && node scripts/gyp-sources.mjs native/core native/driver/frontend native/test | tr ' ' '\n')
mapfile -t b3srcs < <(cd "$root" && node scripts/blake3-sources.mjs --sources | tr ' ' '\n')
{
  echo "CXX := $cxx"
  echo "CC := $cc"
  echo "FLAGS := $flags"
  echo "CFLAGS := $cflags"
  echo "SAN := $san"
  objs=()
  for s in "${srcs[@]}"; do
    o="$out/obj/${s%.cc}.o"
    objs+=("$o")
    printf '%s: %s\n\t@mkdir -p $(dir $@)\n\t$(CXX) $(FLAGS) -MMD -MP -c $< -o $@\n' "$o" "$root/$s"
  done
  for s in "${b3srcs[@]}"; do
    o="$out/obj/blake3/$(basename "$s").o"
    objs+=("$o")
    printf '%s: %s\n\t@mkdir -p $(dir $@)\n\t$(CC) $(CFLAGS) -MMD -MP -c $< -o $@\n' "$o" "$s"
  done
  printf '%s: %s\n\t$(CXX) $(SAN) -o $@ $^ -llz4 -lzstd -lcrypto -lpthread\n' "$out/nydus_core_tests" "${objs[*]}"
  printf -- '-include $(wildcard %s/obj/native/*/*.d %s/obj/native/*/*/*.d %s/obj/blake3/*.d)\n' "$out" "$out" "$out"
} >"$out/Makefile"

echo "sanitize: building core tests with $cxx/$cc ($san), ${#srcs[@]} + ${#b3srcs[@]} BLAKE3 sources, $(nproc) jobs" >&2
t0=$(date +%s)
make -s -f "$out/Makefile" -j"$(nproc)" "$out/nydus_core_tests"
t1=$(date +%s)
echo "sanitize: $mode build took $((t1 - t0)) s" >&2

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/native/test/lsan_suppress.txt}
echo "sanitize: running $out/nydus_core_tests" >&2
status=0
"$out/nydus_core_tests" "${filter[@]}" || status=$?
echo "sanitize: $mode run took $(($(date +%s) - t1)) s (exit $status)" >&2
exit $status
