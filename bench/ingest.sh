#!/usr/bin/env bash
# Knowledge ingest end to end: a text-layer PDF of N pages (default 200) uploaded through the API
# into an embedded careport (release, SQLite, the local model), timed from the upload to its
# embedding job's `done`: text extraction, chunking with the model's tokenizer, embedding in
# batches, committing the vectors, and the in-process index. Prints pages, chunks, seconds and
# chunks/s. MODEL_DIR picks the local model (default: MiniLM as .ci/run installs it).
#
#   bash bench/ingest.sh [PAGES]
#
# Needs curl, python3 and poppler-utils (bench/ocr/make_pages.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
PAGES=${1:-200}
MODEL_DIR=${MODEL_DIR:-/var/cache/careport-ci-data/models/all-MiniLM-L6-v2}
cargo build --release -q -p careport
BIN="$CARGO_TARGET_DIR/release/careport"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn CAREPORT__ML__LOCAL__MODEL_DIR="$MODEL_DIR" \
  CAREPORT__OCR__ENABLED=false CAREPORT__HTTP__PORT=$PORT
PID=
trap '[ -n "$PID" ] && { kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; }; rm -rf "$WORK"' EXIT

python3 bench/ocr/make_pages.py 1 "$WORK/pages" --text-layer-pages "$PAGES" >/dev/null
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
"$BIN" migrate >/dev/null
printf '%s\n' "$PASSWORD" | "$BIN" user create --email bench@bench.careport.example --role admin >/dev/null
"$BIN" serve >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"email\":\"bench@bench.careport.example\",\"password\":\"$PASSWORD\"}" \
  "http://127.0.0.1:$PORT/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

python3 - "$PORT" "$TOKEN" "$WORK/pages/text-layer.pdf" "$PAGES" <<'PY'
import json, sys, time, urllib.request, uuid
port, token, path, pages = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
data = open(path, "rb").read()
b = uuid.uuid4().hex
fields = {"title": "Benchmark", "audience": "all", "language": "en"}
body = b"".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items())
body += f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="bench.pdf"\r\nContent-Type: application/pdf\r\n\r\n'.encode()
body += data + f"\r\n--{b}--\r\n".encode()
hdr = {"Authorization": f"Bearer {token}"}
t0 = time.monotonic()
req = urllib.request.Request(f"{base}/api/v1/knowledge/documents", data=body, method="POST",
                             headers={**hdr, "Content-Type": f"multipart/form-data; boundary={b}"})
job = json.load(urllib.request.urlopen(req))["job_id"]
while True:
    st = json.load(urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/knowledge/jobs/{job}", headers=hdr)))
    if st["status"] in ("done", "failed", "cancelled"):
        break
    time.sleep(0.05)
dt = time.monotonic() - t0
assert st["status"] == "done", st
n = st["chunks_total"]
print(f"pages {pages} ({len(data) / 1e6:.1f} MB), chunks {n}, {dt:.1f} s: {n / dt:.1f} chunks/s, {pages / dt:.1f} pages/s")
PY
