#!/usr/bin/env bash
# The whole test suite: formatting, lints and the dependencies' licences, then unit tests, the binaries' CLI tests, and the
# end-to-end tests with real mTLS on loopback, real git repositories and a real MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Licences, bans and sources; advisories need the RustSec database from GitHub, unreachable
# from this CI machine (run `cargo deny check advisories` where it can be fetched).
cargo deny --log-level error check licenses bans sources
cargo test --workspace --locked
