#!/usr/bin/env bash
# npm run test:stress [-- RUNS]: the whole suite, RUNS times in a row (default 3), each with
# two CPU-bound processes beside it, as on a shared 2-core CI machine. Stops at the first
# failing run. Prints each run's time; the spec reporter's tail names the slowest tests.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
busy_loops=${MTLS_EGRESS_STRESS_LOOPS:-2}

pids=()
stop_busy() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap stop_busy EXIT

for _ in $(seq "$busy_loops"); do
  sh -c 'while :; do :; done' &
  pids+=($!)
done
echo "test:stress: $runs runs of npm test beside $busy_loops busy loops (pids ${pids[*]})"

for run in $(seq "$runs"); do
  started=$(date +%s)
  log=$(mktemp -t mtls-egress-stress-XXXX.log)
  if npm test >"$log" 2>&1; then outcome=passed; else outcome=FAILED; fi
  seconds=$(( $(date +%s) - started ))
  echo "test:stress: run $run/$runs $outcome in ${seconds}s (log: $log)"
  sed -n '/slowest of/,$p' "$log"
  if [ "$outcome" = FAILED ]; then
    grep -E '^\s*✖|not ok|Error|actual|expected' "$log" | head -40
    exit 1
  fi
done
echo "test:stress: $runs of $runs runs passed"
