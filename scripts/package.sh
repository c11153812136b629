#!/usr/bin/env bash
# Builds the Debian packages boltfleet-agent and boltfleet-controller (with the `boltfleet` CLI)
# into target/debian/ (or --out DIR) with cargo-deb, installing cargo-deb first when missing.
#
#   bash scripts/package.sh          release build: the agent's size-optimized profile, the
#                                    controller's release profile
#   bash scripts/package.sh --dev    no compilation: packages the dev-profile binaries that
#                                    `cargo build --workspace` / `cargo test --workspace` left
#                                    in target/debug (what the packaging test checks)
#
# Man pages and completions are rendered by `xtask dist` from the binaries' own clap
# definitions into <profile dir>/dist, where the crates' [package.metadata.deb] assets find them.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=false
out=target/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=true ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--dev] [--out DIR]" >&2; exit 64 ;;
  esac
  shift
done

if ! command -v cargo-deb >/dev/null; then
  echo "installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked --quiet
fi
target="${CARGO_TARGET_DIR:-target}"

# dist DIR: man pages (gzipped, reproducibly) and completions for the packages built from DIR.
dist() {
  rm -rf "$1/dist"
  "$xtask" dist "$1/dist" >/dev/null
  gzip -9n "$1"/dist/man/*/*.1
}

if $dev; then
  xtask="$target/debug/xtask"
  for bin in boltfleet-agent boltfleet-controller boltfleet xtask; do
    [ -x "$target/debug/$bin" ] || { echo "$target/debug/$bin is missing: run cargo build --workspace" >&2; exit 1; }
  done
  dist "$target/debug"
  cargo deb --locked -q -p boltfleet-agent --profile dev --no-build --fast -o "$out"
  cargo deb --locked -q -p boltfleet-controller --profile dev --no-build --fast -o "$out"
else
  cargo build --locked -q -p xtask
  xtask="$target/debug/xtask"
  cargo build --locked --profile agent -p boltfleet-agent
  cargo build --locked --release -p boltfleet-controller
  dist "$target/agent"
  dist "$target/release"
  cargo deb --locked -p boltfleet-agent --profile agent --no-build -o "$out"
  cargo deb --locked -p boltfleet-controller --no-build -o "$out"
fi
