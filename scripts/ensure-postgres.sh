#!/usr/bin/env bash
# Make sure the PostgreSQL server the integration tests use answers on 127.0.0.1:5432.
# On these machines it is started before the session; if it is down, start the cluster.
set -uo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
ready && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "PostgreSQL is not answering; starting the local cluster ..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
echo "warning: PostgreSQL is not reachable on 127.0.0.1:5432; tests marked 'postgres' will fail" >&2
exit 0
