#!/usr/bin/env bash
# The agent's footprint on an idle host: the stripped release binary's size, then a controller,
# one fixture passbolt site (real git, real MariaDB) and an enrolled agent at its default report
# interval (tests/src/bin/boltfleet-idle-host.rs), while the agent's /proc entries are sampled:
# RSS (VmRSS, and the peak VmHWM), its own CPU time (utime+stime) and that of the children it
# waited for (cutime+cstime: git, the healthcheck and migration-status commands of each report).
#
#   bash scripts/bench/agent-footprint.sh [DURATION_SECONDS]     # default 600
#   DURATION=20 INTERVAL=2 bash scripts/bench/agent-footprint.sh  # a smoke test
#
# Samples go to $OUT (default target/bench/agent-footprint-<time>/samples.tsv). The usual cargo
# variables apply to the build, e.g. another opt-level in its own target dir:
#   CARGO_TARGET_DIR=target/opt-s CARGO_PROFILE_RELEASE_OPT_LEVEL=s bash scripts/bench/agent-footprint.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION="${1:-${DURATION:-600}}"
INTERVAL="${INTERVAL:-5}"
OUT="${OUT:-target/bench/agent-footprint-$(date +%Y%m%d-%H%M%S)}"
[[ "$DURATION" =~ ^[0-9]+$ && "$INTERVAL" =~ ^[0-9]+$ && "$INTERVAL" -gt 0 ]] ||
    { echo "usage: $0 [DURATION_SECONDS] (INTERVAL=seconds)" >&2; exit 64; }
mkdir -p "$OUT"
# The agent is measured as shipped: built with the `agent` profile (PROFILE=release to compare).
PROFILE="${PROFILE:-agent}"
bin_dir="${CARGO_TARGET_DIR:-target}/$PROFILE"

cargo build --profile "$PROFILE" --locked -p boltfleet-agent -p boltfleet-controller \
    --bin boltfleet-agent --bin boltfleet-controller --bin boltfleet
cargo build --profile "$PROFILE" --locked -p boltfleet-tests --bin boltfleet-idle-host

agent_bin="$bin_dir/boltfleet-agent"
bin_bytes=$(stat -c %s "$agent_bin")
stripped=$(file -b "$agent_bin" | grep -o 'not stripped\|stripped' || echo unknown)
build=$(env | grep '^CARGO_PROFILE_RELEASE_' | sort | tr '\n' ' ' || true)
build="${build% }"; build="${build:-profile $PROFILE as in Cargo.toml}"

HZ=$(getconf CLK_TCK)
host_out="$OUT/idle-host.out"
"$bin_dir/boltfleet-idle-host" >"$host_out" 2>"$OUT/idle-host.err" &
host_pid=$!
stop_host() {
    if kill -0 "$host_pid" 2>/dev/null; then
        kill -TERM "$host_pid" 2>/dev/null || true
        wait "$host_pid" 2>/dev/null || true
    fi
}
trap stop_host EXIT

echo "==> setting up the idle host (controller, fixture site, enrolled agent)" >&2
for _ in $(seq 1 600); do
    grep -q '^ready$' "$host_out" 2>/dev/null && break
    kill -0 "$host_pid" 2>/dev/null || { cat "$OUT/idle-host.err" >&2; exit 1; }
    sleep 0.5
done
grep -q '^ready$' "$host_out" || { echo "idle host not ready after 300s" >&2; exit 1; }
agent_pid=$(sed -n 's/^agent_pid=//p' "$host_out")
controller_pid=$(sed -n 's/^controller_pid=//p' "$host_out")
agent_log=$(sed -n 's/^agent_log=//p' "$host_out")

# One sample: epoch ms; VmRSS, VmHWM, RssAnon, RssFile kB; PSS and USS (Private_Clean +
# Private_Dirty) kB from smaps_rollup; threads; utime+stime and cutime+cstime (clock ticks).
sample() {
    local status stat fields
    status=$(<"/proc/$1/status") || return 1
    status+=$'\n'$(<"/proc/$1/smaps_rollup") || return 1
    stat=$(<"/proc/$1/stat") || return 1
    # Fields after `pid (comm)`: state is $1, so utime..cstime are $12..$15.
    read -r -a fields <<<"${stat##*) }"
    awk -v now="$(date +%s%3N)" -v own=$((fields[11] + fields[12])) \
        -v kids=$((fields[13] + fields[14])) '
        /^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} /^RssAnon:/ {anon=$2} /^RssFile:/ {file=$2}
        /^Pss:/ {pss=$2} /^Private_(Clean|Dirty):/ {uss+=$2} /^Threads:/ {thr=$2}
        END {print now "\t" rss "\t" hwm "\t" anon "\t" file "\t" pss "\t" uss "\t" thr "\t" own "\t" kids}' <<<"$status"
}

samples="$OUT/samples.tsv"
printf 'ms\tvmrss_kb\tvmhwm_kb\trssanon_kb\trssfile_kb\tpss_kb\tuss_kb\tthreads\tcpu_ticks\tchildren_ticks\n' >"$samples"
echo "==> sampling agent pid $agent_pid every ${INTERVAL}s for ${DURATION}s" >&2
start=$(date +%s)
while :; do
    sample "$agent_pid" >>"$samples" || { echo "agent $agent_pid exited" >&2; exit 1; }
    (($(date +%s) - start >= DURATION)) && break
    sleep "$INTERVAL"
done
ctl_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$controller_pid/status" 2>/dev/null || echo '?')
reconnects=$(grep -c 'controller unreachable' "$agent_log" 2>/dev/null || true)
stop_host
trap - EXIT

# RSS min, median, max (kB) from the sorted column; the rest from the samples in order.
read -r rss_min rss_med rss_max < <(tail -n +2 "$samples" | cut -f2 | sort -n | awk '
    {v[NR] = $1} END {print v[1], (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR]}')
awk -F'\t' -v hz="$HZ" -v bytes="$bin_bytes" -v stripped="$stripped" -v ctl="$ctl_rss" \
    -v reconnects="${reconnects:-0}" -v file="$samples" -v build="$build" \
    -v min="$rss_min" -v med="$rss_med" -v max="$rss_max" '
    NR == 1 {next}
    {n++; hwm = $3; anon = $4; rfile = $5; pss = $6; uss = $7; thr = $8; cpu[n] = $9; kids[n] = $10
     ms[n] = $1}
    END {
        if (n < 2) {print "too few samples" > "/dev/stderr"; exit 1}
        secs = (ms[n] - ms[1]) / 1000
        own = (cpu[n] - cpu[1]) / hz; child = (kids[n] - kids[1]) / hz
        printf "agent footprint on an idle host (%d samples over %.0f s)\n", n, secs
        printf "  binary     %.2f MiB (%d bytes, %s; %s)\n", bytes / 1048576, bytes, stripped, build
        printf "  RSS        min %.2f / median %.2f / max %.2f MiB (target < 8 MiB)\n",
            min / 1024, med / 1024, max / 1024
        printf "  peak RSS   %.2f MiB (VmHWM, since start); %d threads\n", hwm / 1024, thr
        printf "  last RSS   %.2f MiB anonymous + %.2f MiB file-backed (binary, libc); PSS %.2f MiB; USS %.2f MiB\n",
            anon / 1024, rfile / 1024, pss / 1024, uss / 1024
        printf "  agent CPU  %.2f s over the window = %.3f%% of one core (%.2f s since start)\n",
            own, 100 * own / secs, cpu[n] / hz
        printf "  children   %.2f s over the window = %.3f%% of one core (%.2f s since start)\n",
            child, 100 * child / secs, kids[n] / hz
        printf "  (controller RSS at the end: %s kB; agent reconnects: %d; samples: %s)\n",
            ctl, reconnects, file
    }' "$samples" | tee "$OUT/summary.txt"
