#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: first over the checked-in corpus (fuzz/corpus/<target>,
# regressions included), then on new inputs. New inputs go to a scratch directory, so a run never
# changes the repository; a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 20 s, every target)
#
# cargo fuzz needs a nightly compiler: the `nightly` toolchain when rustup has one, otherwise the
# installed compiler with RUSTC_BOOTSTRAP=1. No sanitizer (-s none): the code under test is safe
# Rust, and what the targets look for is panics and broken invariants.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-20}"
shift || true
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  FUZZ=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  FUZZ=(cargo fuzz)
fi
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  mapfile -t TARGETS < <("${FUZZ[@]}" list)
fi
"${FUZZ[@]}" build -s none
SCRATCH="$(mktemp -d -t streampulse-fuzz.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
for target in "${TARGETS[@]}"; do
  mkdir -p "$SCRATCH/$target" "corpus/$target"
  echo "== fuzz $target (${SECONDS_PER_TARGET}s, corpus: $(ls "corpus/$target" | wc -l) inputs)"
  if ! "${FUZZ[@]}" run -s none "$target" "$SCRATCH/$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 >"$SCRATCH/$target.log" 2>&1; then
    tail -n 40 "$SCRATCH/$target.log"
    echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^Done' "$SCRATCH/$target.log" || true
done
