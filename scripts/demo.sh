#!/usr/bin/env bash
# The local demo: a controller and four fixture passbolt hosts with real agents (real mTLS on
# loopback, real git, real MariaDB), then the fleet report. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo build --workspace --bins --locked
exec target/debug/boltfleet-demo "$@"
