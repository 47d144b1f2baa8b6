#!/usr/bin/env bash
# Start a real PostgreSQL server on loopback for the multi-worker tests, and print the exports
# that point the tests at it. Usage: eval "$(.ci/postgres.sh)"
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  $SUDO pg_createcluster "$version" main >&2
fi
as_postgres() { if [ -n "$SUDO" ]; then sudo -u postgres "$@"; else su postgres -c "$(printf '%q ' "$@")"; fi; }
$SUDO pg_ctlcluster "$version" main start >&2 || true  # already running is fine
for _ in $(seq 30); do
  as_postgres psql -qAtc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
as_postgres psql -qAt -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tlsweep') THEN CREATE ROLE tlsweep LOGIN PASSWORD 'tlsweep-ci-secret' CREATEDB; END IF; END \$\$;" >&2
as_postgres psql -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'tlsweep_test'" | grep -q 1 \
  || as_postgres createdb -O tlsweep tlsweep_test >&2
echo "export TLSWEEP_TEST_POSTGRES_URL=postgresql://tlsweep:tlsweep-ci-secret@127.0.0.1:5432/tlsweep_test"
echo "export TLSWEEP_REQUIRE_POSTGRES=1"
