#!/usr/bin/env bash
# Start the Python peer (bench/peer/README.md) on 127.0.0.1:PORT against careport's PostgreSQL
# database: uvicorn with uvloop and httptools, 2 worker processes (one per core of the bench
# machine; PEER_WORKERS to change). Runs in the foreground (exec: the caller's $! is uvicorn's
# parent, and killing it stops the workers) and prints nothing but errors. Needs
# bench/peer/setup.sh first, and PEER_JWT_SECRET in the environment.
#
#   PEER_JWT_SECRET=… bash bench/peer/serve.sh PORT DATABASE_URL &
set -euo pipefail
[ $# = 2 ] || { echo "usage: serve.sh PORT DATABASE_URL" >&2; exit 2; }
: "${PEER_JWT_SECRET:?set PEER_JWT_SECRET}"
VENV=${PEER_VENV:-/var/cache/careport-ci-data/peer-venv}
# From the repository root, importing bench.peer.app.
cd "$(dirname "$0")/../.."
export PEER_DATABASE_URL=$2
exec "$VENV/bin/uvicorn" bench.peer.app:app --host 127.0.0.1 --port "$1" \
  --workers "${PEER_WORKERS:-2}" --loop uvloop --http httptools --no-access-log --log-level error
