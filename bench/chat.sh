#!/usr/bin/env bash
# Chat over WebSockets: N concurrent sessions of one patient asking questions in turn for a
# while, on the release binary in embedded mode, with the knowledge base holding the 36 passages
# of tests/fixtures/knowledge/multilingual.json (English renderings) and the local e5 model
# when installed (else full text only).
#
#   bash bench/chat.sh grounded [SESSIONS] [SECONDS] [THINK_MS]
#       no LLM: answers quoted from passages
#   bash bench/chat.sh llm [SESSIONS] [SECONDS] [THINK_MS] [GAP_MS]
#       a local OpenAI-compatible server streaming one word every GAP_MS (default 20)
#
# UNIQUE=1: every question a new text (numbered), so no query vector is reused (the 36 questions
# otherwise repeat, and their vectors are kept after the first round).
# THINK_MS: each session's pause between an answer and its next question (default 0: back to
# back, which saturates the server; a person reading the answer pauses seconds).
#
# Prints time to first token p50/p99, answers/s and, for `llm`, the time between tokens as the
# client sees it (against GAP_MS: careport's overhead per token). Client, server and the fake
# model share this machine's 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
MODE=${1:-grounded}
SESSIONS=${2:-50}
SECONDS_=${3:-20}
THINK=${4:-0}
GAP=${5:-20}
cargo build --release -q -p careport --bin careport
cargo build --release -q -p careport-tests --example chat_load
BIN="$CARGO_TARGET_DIR/release/careport"
LOAD="$CARGO_TARGET_DIR/release/examples/chat_load"
WORK=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(port)
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn CAREPORT__CHAT__MAX_SOCKETS_PER_USER=$((SESSIONS + 10))
E5=${CAREPORT_BENCH_E5_DIR:-/var/cache/careport-ci-data/models/multilingual-e5-small-q4}
if [ -n "$(ls "$E5" 2>/dev/null)" ]; then
  export CAREPORT__ML__LOCAL__MODEL_DIR="$E5"
else
  export CAREPORT__ML__EMBEDDING_PROVIDER=off
fi
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"' EXIT
if [ "$MODE" = llm ]; then
  LLM_PORT=$(port)
  "$LOAD" fake-llm --port "$LLM_PORT" --gap-ms "$GAP" >"$WORK/fake.log" 2>&1 &
  PIDS+=($!)
  # llm.max_concurrency (default 8) caps requests in flight to a provider; raised here so that
  # the benchmark measures careport, not that cap (LLM_CONCURRENCY=8 to see it).
  export CAREPORT__LLM__BASE_URL="http://127.0.0.1:$LLM_PORT/v1" CAREPORT__LLM__CHAT_MODEL=bench-model \
    CAREPORT__LLM__MAX_CONCURRENCY=${LLM_CONCURRENCY:-$((SESSIONS + 10))}
fi

"$BIN" seed-demo --admins 1 --clinicians 2 --patients 1 --patient-accounts 1 --appointments-per-patient 0 >"$WORK/seed.txt"
ADMIN=$(awk '$1 == "admin" {print $2" "$3; exit}' "$WORK/seed.txt")
PATIENT=$(awk '$1 == "patient" {print $2" "$3; exit}' "$WORK/seed.txt")
CAREPORT__HTTP__PORT=$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
login() {
  curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$1\",\"password\":\"$2\"}" \
    "http://127.0.0.1:$PORT/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ADMIN_TOKEN=$(login $ADMIN)
PATIENT_TOKEN=$(login $PATIENT)
# The passages as patient documents, then wait for their embedding jobs; the questions, in English.
python3 - "$PORT" "$ADMIN_TOKEN" "$WORK/questions.txt" <<'PY'
import json, sys, time, urllib.request
port, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
data = json.load(open("tests/fixtures/knowledge/multilingual.json"))
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
jobs = []
for p in data["passages"]:
    text = p.get("text_en") or p["text"]
    jobs.append(call("POST", "/api/v1/knowledge/documents",
        {"title": p["id"].replace("-", " ").title(), "text": text, "audience": "patient", "language": "en"})["job_id"])
for j in jobs:
    while call("GET", f"/api/v1/knowledge/jobs/{j}")["status"] not in ("done", "failed", "cancelled"):
        time.sleep(0.2)
with open(out, "w") as f:
    for q in data["questions"]:
        if q["lang"] == "en":
            f.write(q["text"].replace("\n", " ") + "\n")
PY
echo "mode=$MODE model=${CAREPORT__ML__LOCAL__MODEL_DIR:-off} questions=$(wc -l <"$WORK/questions.txt") sessions=$SESSIONS seconds=$SECONDS_ think_ms=$THINK $( [ "$MODE" = llm ] && echo "gap_ms=$GAP")"
"$LOAD" load --url "http://127.0.0.1:$PORT" --token "$PATIENT_TOKEN" --sessions "$SESSIONS" --seconds "$SECONDS_" \
  --questions "$WORK/questions.txt" --think-ms "$THINK" ${UNIQUE:+--unique}
