#!/usr/bin/env bash
# The end-to-end suite under load: runs the end-to-end test files concurrently, ROUNDS times,
# and reports every failure with its log. Races between a job and anything else touching the
# host hide on an idle machine; this is how they are found. Not part of .ci/run.
#
#   bash scripts/stress.sh [ROUNDS] [FILE...]
#
# ROUNDS defaults to 5; FILEs are test files of tests/tests (default: all of them, with
# rollout three times, as the canary tests are the ones that found the restore race).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  for f in tests/tests/*.rs; do files+=("$(basename "$f" .rs)"); done
  files+=(rollout rollout)
fi

bash scripts/ensure-deps.sh
cargo build --workspace --bins --locked
declare -A exe
while read -r name path; do exe[$name]=$path; done < <(
  cargo test -p boltfleet-tests --tests --no-run --locked 2>&1 |
    sed -n 's/^ *Executable tests\/\(.*\)\.rs (\(.*\))$/\1 \2/p'
)

logs=$(mktemp -d /tmp/boltfleet-stress.XXXXXX)
failed=0
total=0
for round in $(seq 1 "$rounds"); do
  pids=()
  names=()
  for i in "${!files[@]}"; do
    name=${files[$i]}
    bin=${exe[$name]:-}
    [ -n "$bin" ] || { echo "no test file tests/tests/$name.rs" >&2; exit 64; }
    log="$logs/round$round-$i-$name.log"
    "$bin" >"$log" 2>&1 &
    pids+=($!)
    names+=("$name:$log")
  done
  round_failed=0
  for i in "${!pids[@]}"; do
    total=$((total + 1))
    if ! wait "${pids[$i]}"; then
      round_failed=$((round_failed + 1))
      echo "round $round: FAILED ${names[$i]%%:*} (log: ${names[$i]#*:})"
      grep -E '^test .* FAILED|^(Error|thread .* panicked)' "${names[$i]#*:}" | head -5 | sed 's/^/    /'
    fi
  done
  failed=$((failed + round_failed))
  echo "round $round: ${#pids[@]} files at once, $round_failed failed"
done
echo "stress: $rounds rounds, $((total - failed)) passed, $failed failed (logs in $logs)"
[ "$failed" -eq 0 ]
