#!/usr/bin/env bash
# Create the venv of the Python embedding stack (bench/torch/README.md) if missing and install
# the pinned requirements into it. Idempotent: a venv whose requirements file is unchanged is
# left as it is. Only PyPI is used; about 2.7 GB to download, ~5 GB installed.
#
#   bash bench/torch/setup.sh       # venv at ${TORCH_VENV:-/var/cache/careport-ci-data/torch-venv}
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${TORCH_VENV:-/var/cache/careport-ci-data/torch-venv}
[ -x "$VENV/bin/python" ] || { mkdir -p "$(dirname "$VENV")"; "${PYTHON:-python3}" -m venv "$VENV"; }
# The stamp is the requirements file itself: reinstall only when it changed.
if ! cmp -s "$HERE/requirements.txt" "$VENV/.torch-requirements.txt"; then
  # --no-deps: the file is the whole lock. Resolving torch's own dependencies would add
  # triton and the CUDA meta-packages that a CPU run never loads.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$HERE/requirements.txt"
  # Fail here, not in the benchmark, if a library torch links is missing.
  "$VENV/bin/python" -c 'import torch, sentence_transformers; torch.ones(2) @ torch.ones(2)'
  cp "$HERE/requirements.txt" "$VENV/.torch-requirements.txt"
fi
