#!/usr/bin/env bash
# Start what the test suite needs: a local PostgreSQL on 127.0.0.1:5432 with trust
# auth for local connections. Installs it from Debian's packages when missing.
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "services: installing PostgreSQL from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {found=1} END {exit !found}'; then
  echo "services: starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi

for _ in $(seq 50); do
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "services: PostgreSQL $version ready on 127.0.0.1:5432"
    exit 0
  fi
  sleep 0.2
done
echo "services: PostgreSQL did not become ready" >&2
exit 1
