#!/usr/bin/env bash
# fuzz.sh TARGET SECONDS [libFuzzer options...] - coverage-guided fuzzing of one parser.
#
# TARGET: safetensors | config | tokenizer_json | prompt | png | gguf | jpeg | lora | request
# (tests/fuzz/fuzz_TARGET.c).
# Builds build-fuzz/fuzz_TARGET (clang, libFuzzer + ASan/UBSan), starts from the seed
# corpus tests/fuzz/corpus/TARGET (never modified: new inputs go to
# build-fuzz/corpus/TARGET) and runs for SECONDS. Crashes are written to
# build-fuzz/artifacts/ and make the script exit non-zero. Run it from anywhere;
# use `nice -n 19` for long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options]" >&2
  echo "targets: $(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||' | tr '\n' ' ')" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
if [ ! -f "tests/fuzz/fuzz_$target.c" ]; then
  echo "fuzz.sh: no target '$target' (tests/fuzz/fuzz_$target.c)" >&2
  exit 2
fi
make -s -j2 FUZZ=1 "build-fuzz/fuzz_$target"
work=build-fuzz/corpus/$target
mkdir -p "$work" build-fuzz/artifacts
dict=()
[ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
export ZIMAGE_FIXTURES=${ZIMAGE_FIXTURES:-$PWD/tests/fixtures}
exec "build-fuzz/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=3072 -timeout=30 \
  -artifact_prefix="build-fuzz/artifacts/$target-" "${dict[@]}" "$@" "$work" "tests/fuzz/corpus/$target"
