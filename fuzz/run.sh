#!/usr/bin/env bash
# Runs every cargo-fuzz target of dock-core's parsers for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 20)
#
# Installs what is missing (rustup's nightly toolchain, cargo-fuzz), fuzzes
# each target on a scratch copy of its seed corpus (fuzz/corpus-run/<target>;
# the committed fuzz/corpus is never grown), prints executions and time per
# target and a summary, and exits non-zero if any target finds a crash (the
# artifact path, under fuzz/artifacts/<target>/, is in the output).
# Builds with debug assertions (so overflow checks) and AddressSanitizer.
set -uo pipefail

SECS="${1:-20}"
case "$SECS" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR" || exit 2

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal || exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz || exit 2
fi
echo "== $(rustup run nightly rustc --version); $(cargo +nightly fuzz --version)"

TARGETS=(create_body admin_bodies sse_decoder wait_query path_ids oauth_answers)

echo "== building ${#TARGETS[@]} targets"
build_start=$(date +%s)
if ! cargo +nightly fuzz build -a; then
  echo "fuzz build failed" >&2
  exit 2
fi
echo "== build took $(($(date +%s) - build_start)) s"

mkdir -p corpus-run
declare -a SUMMARY=()
failed=0
for t in "${TARGETS[@]}"; do
  run_dir="corpus-run/$t"
  log="corpus-run/$t.log"
  rm -rf "$run_dir"
  cp -r "corpus/$t" "$run_dir"
  echo "== $t: ${SECS} s on a copy of corpus/$t ($(ls "corpus/$t" | wc -l) seeds)"
  start=$(date +%s)
  cargo +nightly fuzz run -a "$t" "$run_dir" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  units=$(ls "$run_dir" | wc -l)
  if [ "$rc" -eq 0 ]; then
    status=ok
  else
    status="CRASH (exit $rc)"
    failed=1
    echo "---- $t: last lines of $log"
    tail -n 60 "$log"
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | awk '{print $NF}')
    echo "---- $t: crash artifact: ${artifact:-none written, see $FUZZ_DIR/$log}"
    if [ -n "$artifact" ]; then
      echo "---- reproduce: (cd $FUZZ_DIR && cargo +nightly fuzz run -a $t $artifact)"
    fi
  fi
  echo "   $t: executions=${execs:-?} time=${took}s coverage=${cov:-?} corpus=${units} $status"
  SUMMARY+=("$(printf '%-14s executions=%-10s time=%3ss coverage=%-5s corpus=%-5s %s' \
    "$t" "${execs:-?}" "$took" "${cov:-?}" "$units" "$status")")
done

echo "== fuzz summary (${SECS} s per target)"
for line in "${SUMMARY[@]}"; do
  echo "fuzz: $line"
done
exit "$failed"
