#!/usr/bin/env bash
# The whole test suite: unit tests, the binaries' CLI tests, and the end-to-end tests with real
# mTLS on loopback, real git repositories and a real MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo test --workspace --locked
