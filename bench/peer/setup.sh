#!/usr/bin/env bash
# Create the Python peer's virtual environment (bench/peer/README.md) if missing and install its
# pinned requirements into it. Idempotent: a venv whose requirements are already installed is
# left as it is.
#
#   bash bench/peer/setup.sh        # venv at ${PEER_VENV:-/var/cache/careport-ci-data/peer-venv}
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${PEER_VENV:-/var/cache/careport-ci-data/peer-venv}
[ -x "$VENV/bin/python" ] || { mkdir -p "$(dirname "$VENV")"; "${PYTHON:-python3}" -m venv "$VENV"; }
# The stamp is the requirements file itself: reinstall only when it changed.
if ! cmp -s "$HERE/requirements.txt" "$VENV/.peer-requirements.txt"; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$VENV/.peer-requirements.txt"
fi
