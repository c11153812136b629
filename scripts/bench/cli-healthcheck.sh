#!/usr/bin/env bash
# A healthcheck job through the CLI on loopback, end to end: a controller and one fixture
# passbolt host with a real agent, then `boltfleet host healthcheck web1 --wait` N times
# (default 50), each timed from the CLI's start to its exit. Release build; run it on an
# otherwise idle machine. Results go in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ensure-deps.sh
cargo build --release --workspace --bins --locked
exec target/release/boltfleet-bench-healthcheck "${1:-50}"
