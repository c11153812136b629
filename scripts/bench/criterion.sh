#!/usr/bin/env bash
# Runs the controller's criterion benchmarks (the rollout planner and the fleet report over
# 50,000 synthetic hosts) and prints the summary: the fleet's shape, each result's interval
# [low mean high] beside its target, and the output digests that show a change plans and
# reports alike. Extra arguments go to criterion, e.g. a filter (`plan`) or
# `--save-baseline before` / `--baseline before`. The full output is kept in
# target/criterion-run.log; criterion's own reports are under target/criterion/.
#
# Release build (slow on 2 cores the first time); the run itself takes about 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

log=target/criterion-run.log
mkdir -p target
cargo bench -p boltfleet-controller --bench plan --bench report -- --noplot "$@" 2>&1 \
    | tee "$log" >/dev/null

echo "== criterion summary ($(git rev-parse --short HEAD), $(nproc) cores)"
# Criterion prints a long name on its own line and the interval on the next one.
awk '
    /^(fleet|plan|report|store populated|fleet_report):? / && !/^(plan|report)\// { print; next }
    /^(plan|report)\/[^ ]+$/ { name = $1; next }
    /time:/ {
        if ($1 ~ /^(plan|report)\//) { name = $1 }
        target = ""
        if (name ~ /^plan\//) { target = "   (target < 100 ms)" }
        if (name ~ /^report\/build/) { target = "   (target < 200 ms)" }
        if (name ~ /^report\/app_/) { target = "   (report target 200 ms; end to end, for reference)" }
        sub(/^.*time: +/, "")
        printf "%-36s %s%s\n", name, $0, target
    }
' "$log"
