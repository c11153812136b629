#!/usr/bin/env bash
# Installs what the test suite and the demo need on a Debian machine that lacks it:
# git, the MariaDB server and client (the tests start their own private server when none
# answers, so nothing is started here), and for the packaging tests man, dpkg-deb and
# systemd-analyze (cargo-deb itself is installed by scripts/package.sh), and for the etcd store
# engine the etcd server (tests start their own members) and protoc with protobuf's own .proto
# files (the etcd client's build compiles etcd's protos with them), and for the dashboard's
# browser tests headless Chromium with its chromedriver. Safe to run again.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
command -v mariadb >/dev/null || command -v mysql >/dev/null || need+=(mariadb-client)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb-dump >/dev/null || command -v mysqldump >/dev/null || need+=(mariadb-client)
command -v cc >/dev/null || need+=(gcc)
command -v man >/dev/null || need+=(man-db)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v protoc >/dev/null || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
# The metrics test parses scrapes with the reference OpenMetrics parser (prometheus_client).
command -v python3 >/dev/null || need+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import prometheus_client' 2>/dev/null; then
  # Debian's python3 takes the package; another python3 (pyenv, venv) takes it from PyPI.
  if [ "$(command -v python3)" = /usr/bin/python3 ]; then
    need+=(python3-prometheus-client)
  else
    python3 -m pip install -q prometheus-client
  fi
fi
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# cargo-deny checks the dependencies' licences, bans and sources (deny.toml). Built from
# crates.io once (a few minutes on 2 cores, the slowest step of a first run); kept in
# ~/.cargo/bin afterwards.
if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing: cargo-deny (cargo install --locked)" >&2
  cargo install --locked --quiet cargo-deny
fi
