#!/usr/bin/env bash
# The whole test suite: formatting and lints, then unit tests, the binaries' CLI tests, and the
# end-to-end tests with real mTLS on loopback, real git repositories and a real MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
