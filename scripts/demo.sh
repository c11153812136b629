#!/usr/bin/env bash
# The local demo: a controller and eight fixture passbolt hosts with real agents (real mTLS on
# loopback, real git, real MariaDB), a staggered rollout, the fleet report, and the web dashboard
# (`boltfleet ui`), whose address it prints. Cleans up after itself; `--keep` on a terminal waits
# for Enter before the rollout and keeps everything up until Enter at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo build --workspace --bins --locked
exec target/debug/boltfleet-demo "$@"
