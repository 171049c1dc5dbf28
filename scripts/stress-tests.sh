#!/usr/bin/env bash
# The HTTP suite in a loop on a loaded machine, to catch a request that is never answered
# (issue 21): scripts/stress-tests.sh [runs, default 30] [CPU hogs, default one per core]
# Not part of CI. Each run has a bound; a run past it is a hang: its output is kept in
# target/stress/run-N.log (cargo test names the test that has been running for over 60 s).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30} hogs=${2:-$(nproc)}
bound=300
cargo test --features ssr,test-support --test http --no-run
mkdir -p target/stress
hog_pids=()
trap 'kill "${hog_pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 "$hogs"); do (while :; do :; done) & hog_pids+=($!); done
failed=0
for run in $(seq 1 "$runs"); do
  log=target/stress/run-$run.log
  started=$SECONDS
  if timeout --signal=KILL "$bound" cargo test -q --features ssr,test-support --test http >"$log" 2>&1; then
    echo "run $run: passed in $((SECONDS - started)) s"
    rm -f "$log"
  else
    failed=$((failed + 1))
    echo "run $run: FAILED or hung after $((SECONDS - started)) s (bound $bound s): $log"
    grep -E "running for over|FAILED|panicked" "$log" | head -5 || true
  fi
done
echo "stress: $failed of $runs runs failed, with $hogs CPU hogs"
[ "$failed" -eq 0 ]
