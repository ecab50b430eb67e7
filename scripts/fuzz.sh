#!/usr/bin/env bash
# Builds every libFuzzer target in native/fuzz (files named *_fuzz.cc, each defining
# LLVMFuzzerTestOneInput over the core) with clang-16 + ASan/UBSan, then runs each for
# SECONDS (default 60) starting from native/fuzz/corpus/<target>/ (committed seeds).
# Crashes are written to build/fuzz/<target>/ and make the script fail.
#
#   npm run fuzz [-- SECONDS [TARGET]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
only=${2:-}
cxx=${FUZZ_CXX:-clang++-16}
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found; install: apt-get install -y clang-16 libfuzzer-16-dev libclang-rt-16-dev" >&2; exit 1; }
out="$root/build/fuzz"
mkdir -p "$out"
mapfile -t core < <(cd "$root" && node scripts/gyp-sources.mjs native/core | tr ' ' '\n')
targets=()
for f in "$root"/native/fuzz/*_fuzz.cc; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .cc)
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  targets+=("$name")
done
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no targets in native/fuzz" >&2; exit 1; fi
b3dir=$(cd "$root" && node scripts/blake3-sources.mjs --dir)
flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DNYDUS_FUZZING=1 -I"$root/native/core" -I"$b3dir")
# The reference BLAKE3 C sources the core's digests call, built once per run as C (clang++ would
# compile them as C++).
cc=${FUZZ_CC:-${cxx/clang++/clang}}
b3objs=()
read -r -a b3defs <<<"$(cd "$root" && node scripts/blake3-sources.mjs --defines)"
for s in $(cd "$root" && node scripts/blake3-sources.mjs --sources); do
  o="$out/blake3/$(basename "$s").o"
  mkdir -p "$out/blake3"
  "$cc" -g -O1 -fsanitize=address,undefined "${b3defs[@]/#/-D}" -I"$b3dir" -c "$s" -o "$o"
  b3objs+=("$o")
done
status=0
for t in "${targets[@]}"; do
  bin="$out/$t"
  if [ ! -x "$bin" ] || [ -n "$(find "$root/native" -newer "$bin" \( -name '*.cc' -o -name '*.h' \) -print -quit)" ]; then
    echo "fuzz: building $t" >&2
    (cd "$root" && "$cxx" "${flags[@]}" "native/fuzz/$t.cc" "${core[@]}" "${b3objs[@]}" -llz4 -lzstd -lcrypto -lpthread -o "$bin")
  fi
  corpus="$root/native/fuzz/corpus/$t"
  work="$out/$t.corpus"
  mkdir -p "$work" "$out/$t.artifacts"
  echo "fuzz: running $t for ${seconds}s" >&2
  if ! (cd "$out/$t.artifacts" && "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$out/$t.artifacts/" "$work" $( [ -d "$corpus" ] && echo "$corpus" ) 2>"$out/$t.log"); then
    echo "fuzz: $t FAILED; see $out/$t.log and $out/$t.artifacts/" >&2
    tail -40 "$out/$t.log" >&2
    status=1
  fi
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$out/$t.log" | sed "s/^/fuzz: $t /" >&2 || true
done
exit $status
