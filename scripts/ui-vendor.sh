#!/usr/bin/env bash
# Re-fetches the dashboard's one third-party library, Chart.js, at its pinned version from the
# npm registry (with npm itself, no build step), checks the minified UMD file against its pinned
# sha256 and writes it with its licence into controller/assets/ui/. Run it to check the committed
# copy, or after changing VERSION and SHA256 to upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.6.1
SHA256=87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2
DEST=controller/assets/ui

command -v npm >/dev/null || { echo "ui-vendor: npm is needed (apt-get install npm)" >&2; exit 64; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$VERSION" >/dev/null)
tar -xzf "$work/chart.js-$VERSION.tgz" -C "$work" package/dist/chart.umd.min.js package/LICENSE.md
got=$(sha256sum "$work/package/dist/chart.umd.min.js" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "ui-vendor: chart.js $VERSION has sha256 $got, expected $SHA256" >&2
  exit 1
fi
cp "$work/package/dist/chart.umd.min.js" "$DEST/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$DEST/chart.js-LICENSE.md"
echo "chart.js $VERSION: $DEST/chart.umd.min.js ($SHA256)"
