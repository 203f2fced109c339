#!/usr/bin/env bash
# Soak (issue #21): SECONDS of a mixed workload at CONNECTIONS connections against the real
# binary on embedded SQLite with a demo clinic — logins, patient reads, lists and searches,
# record lists and reads, downloads, uploads (read by OCR on upload), knowledge searches,
# appointment lists — with pre-fetched tokens (wrk + bench/soak.lua over the plan that
# bench/soak_prepare.py writes). Beside it, an attacker (2 of the connections, bench/soak_attack.lua)
# sends wrong passwords for one account from its own client address, so the server's deliberate
# 429s happen during the run; they are counted apart. The server's RSS (VmRSS) is sampled every
# second into rss.csv. Afterwards the server stops with SIGTERM and `careport audit verify` must
# pass.
#
#   bash bench/soak.sh [SECONDS] [CONNECTIONS] [BINARY]        (default 60 s × 256)
#   CAREPORT_BIN=… bash bench/soak.sh 15 256                    (the short run of .ci/run)
#
# BINARY (or CAREPORT_BIN) defaults to the release build in $CARGO_TARGET_DIR, else the debug
# one (said so in the output). The local model is used for the knowledge searches when found
# (CAREPORT_SOAK_MODEL_DIR, CAREPORT_TEST_MODEL_DIR, /var/cache/careport-ci-data/models/…);
# without it the searches run on full text only. Results (rss.csv, wrk's outputs, summary.txt)
# are kept in SOAK_OUT (default /tmp/careport-soak-DATE).
#
# Fails when a request of the workload answers anything but 2xx or 429, on any socket error
# (wrk's timeout is 30 s), when the attacker gets anything but 401 or 429, when the server
# panics, when the audit chain does not verify, or — on runs of 60 s or more, or whenever
# SOAK_MAX_GROWTH_MIB is set — when the RSS mean of the last 10 s exceeds that of the first 10 s
# after warm-up by more than SOAK_MAX_GROWTH_MIB (default 64).
# Needs wrk, curl, python3. wrk and the server share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}
CONNS=${2:-256}
TARGET=${CARGO_TARGET_DIR:-/var/cache/careport-target}
BIN=${3:-${CAREPORT_BIN:-}}
if [ -z "$BIN" ]; then
  if [ -x "$TARGET/release/careport" ]; then BIN="$TARGET/release/careport"; else BIN="$TARGET/debug/careport"; fi
fi
[ -x "$BIN" ] || { echo "no careport binary at $BIN (cargo build --release -p careport)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
[ "$CONNS" -ge 8 ] || { echo "CONNECTIONS must be at least 8" >&2; exit 1; }
case "$BIN" in */release/*) PROFILE=release ;; */debug/*) PROFILE=debug ;; *) PROFILE=unknown ;; esac
OUT=${SOAK_OUT:-/tmp/careport-soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
# Only this script's settings reach the server (not a CAREPORT__ variable of the caller's shell).
while read -r var; do unset "$var"; done < <(env | sed -n 's/^\(CAREPORT__[A-Za-z0-9_]*\)=.*/\1/p')
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export CAREPORT__DATA_DIR="$WORK/data" CAREPORT__LOG__LEVEL=warn CAREPORT__LOG__FORMAT=pretty
# The attacker and each signed-in account have their own client address (X-Forwarded-For), as
# behind a proxy: the attacker's lockout is its own, not every user's on 127.0.0.1.
export CAREPORT__HTTP__TRUST_FORWARDED_FOR=true
MODEL=""
for dir in "${CAREPORT_SOAK_MODEL_DIR:-}" "${CAREPORT_TEST_MODEL_DIR:-}" /var/cache/careport-ci-data/models/all-MiniLM-L6-v2 ./data/models/all-MiniLM-L6-v2; do
  if [ -n "$dir" ] && [ -f "$dir/model.safetensors" ]; then MODEL=$dir; break; fi
done
if [ -n "$MODEL" ]; then
  export CAREPORT__ML__LOCAL__MODEL_DIR="$MODEL"
else
  export CAREPORT__ML__EMBEDDING_PROVIDER=off
fi
# Uploads of laboratory results are read by OCR on upload (the soak's are text-layer PDFs); the
# files uploaded for the downloads are of a type that is not.
printf '[ocr]\nauto_record_types = ["laboratory-results"]\n' >"$WORK/soak.toml"
careport() { "$BIN" --config "$WORK/soak.toml" "$@"; }

PID=
SAMPLER=
ATTACK=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  [ -n "$ATTACK" ] && kill "$ATTACK" 2>/dev/null
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "soak: ${DURATION} s × ${CONNS} connections, $PROFILE binary $BIN; model: ${MODEL:-off}; results in $OUT"
careport seed-demo --admins 1 --clinicians 8 --patients 200 --patient-accounts 10 --appointments-per-patient 2 >"$WORK/seed.txt"
CAREPORT__HTTP__PORT=$PORT "$BIN" --config "$WORK/soak.toml" serve >"$OUT/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$BASE/readyz" >/dev/null || { echo "the server never became ready" >&2; tail -n 30 "$OUT/serve.log" >&2; exit 1; }
python3 bench/soak_prepare.py "$BASE" "$WORK/seed.txt" "$WORK" actors/ml/tests/fixtures/text-layer.pdf
cp "$WORK/plan.tsv" "$OUT/plan.tsv"

metric_counts() {  # http_requests_total as "method route status count" lines
  curl -fsS "$BASE/metrics" | sed -n 's/^http_requests_total{\(.*\)} \([0-9.e+]*\)$/\1 \2/p' |
    python3 -c '
import re, sys
for line in sys.stdin:
    labels, value = line.rsplit(" ", 1)
    d = dict(re.findall(r"(\w+)=\"([^\"]*)\"", labels))
    print(d.get("method"), d.get("route"), d.get("status"), int(float(value)))'
}
metric_counts >"$WORK/metrics-before.txt"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0; }
echo "second,rss_kib" >"$OUT/rss.csv"
T0=$(date +%s%N)
sample() { echo "$(( ($(date +%s%N) - T0) / 1000000 ))" | awk -v r="$(rss_kib)" '{printf "%.1f,%s\n", $1 / 1000, r}' >>"$OUT/rss.csv"; }
sample
(
  while kill -0 "$PID" 2>/dev/null; do
    sleep 1
    sample
  done
) &
SAMPLER=$!
echo "load average before: $(uptime | sed 's/.*load average: //')"
SOAK_ATTACK="$WORK/attack.json" wrk -t1 -c2 -d"${DURATION}s" --timeout 30s -s bench/soak_attack.lua \
  "$BASE/api/v1/auth/login" >"$OUT/attack.txt" 2>&1 &
ATTACK=$!
SOAK_PLAN="$WORK/plan.tsv" SOAK_TOKENS="$WORK/tokens.txt" SOAK_PDF=actors/ml/tests/fixtures/text-layer.pdf \
  wrk -t2 -c$((CONNS - 2)) -d"${DURATION}s" --timeout 30s --latency -s bench/soak.lua "$BASE" >"$OUT/wrk.txt" 2>&1 || {
  cat "$OUT/wrk.txt" >&2
  exit 1
}
wait "$ATTACK" || { cat "$OUT/attack.txt" >&2; exit 1; }
ATTACK=
echo "load average after: $(uptime | sed 's/.*load average: //')"
sleep 1
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=
metric_counts >"$WORK/metrics-after.txt"

kill -TERM "$PID"
wait "$PID" || echo "the server exited with $? after SIGTERM" >&2
PID=
AUDIT_RC=0
careport audit verify >"$OUT/audit.txt" 2>&1 || AUDIT_RC=$?

# RSS is judged on runs of 60 s or more (a shorter one is mostly warm-up), or when
# SOAK_MAX_GROWTH_MIB is set.
GROWTH=${SOAK_MAX_GROWTH_MIB:-}
if [ -z "$GROWTH" ] && [ "$DURATION" -ge 60 ]; then GROWTH=64; fi
python3 - "$OUT" "$WORK" "$DURATION" "$CONNS" "$PROFILE" "$AUDIT_RC" "${GROWTH:-none}" <<'PY'
import collections, sys
out, work, duration, conns, profile, audit_rc, max_growth = sys.argv[1:8]
duration, conns, audit_rc = int(duration), int(conns), int(audit_rc)
max_growth = None if max_growth == "none" else float(max_growth)

def kv(path, prefix):
    d = {}
    for line in open(path):
        if line.startswith(prefix + " "):
            _, k, v = line.rstrip("\n").split(" ", 2)
            d[k] = v
    return d

w = kv(f"{out}/wrk.txt", "SOAK")
a = kv(f"{out}/attack.txt", "ATTACK")
problems = []
req = int(w["requests"]); secs = float(w["duration_s"])
other = int(w["other_status"]); sock = int(w["socket_errors"]); t429 = int(w["throttled_429"])
statuses = {k[7:]: v for k, v in w.items() if k.startswith("status_")}
if other:
    problems.append(f"{other} workload responses were neither 2xx nor 429: {statuses}")
if sock:
    problems.append(f"{sock} socket errors in the workload ({w['socket_detail']})")
if int(a["other_status"]) or int(a["socket_errors"]):
    problems.append(f"the attacker got {a['other_status']} answers other than 401/429 (last {a['last_other_status']}) "
                    f"and {a['socket_errors']} socket errors")

def counts(path):
    c = collections.Counter()
    for line in open(path):
        method, route, status, n = line.split()
        c[(method, route, status)] += int(n)
    return c
delta = counts(f"{work}/metrics-after.txt") - counts(f"{work}/metrics-before.txt")
non2xx = sorted((k, n) for k, n in delta.items() if not k[2].startswith("2") and n)

rss = [(float(t), int(r)) for t, r in (l.split(",") for l in open(f"{out}/rss.csv").read().split("\n")[1:] if l) if r]
mib = lambda kib: kib / 1024
warm = min(10, max(1, duration // 4))
win = max(1, min(10, (duration - warm) // 2))
run = [r for t, r in rss if 0 < t <= duration + 0.5]
first = [r for t, r in rss if warm < t <= warm + win]
last = [r for t, r in rss if duration - win < t <= duration + 0.5]
mean = lambda xs: sum(xs) / len(xs) if xs else 0
first_m, last_m = mib(mean(first)), mib(mean(last))
peak = mib(max(run)) if run else 0
start_m = mib(rss[0][1]) if rss else 0
if max_growth is not None and last_m - first_m > max_growth:
    problems.append(f"RSS grew {last_m - first_m:.0f} MiB from the first to the last {win} s after warm-up (limit {max_growth:.0f})")
audit = open(f"{out}/audit.txt").read().strip().splitlines()
if audit_rc:
    problems.append("careport audit verify failed: " + " ".join(audit[-3:]))
panics = [l for l in open(f"{out}/serve.log") if "panicked" in l]
if panics:
    problems.append(f"the server panicked {len(panics)} times: {panics[0].strip()}")

lines = [
    f"soak {duration} s x {conns} connections ({conns - 2} workload + 2 attacker), {profile} binary",
    f"workload: {req} requests, {req / secs:.0f} req/s, p50 {w['latency_p50_ms']} ms, p99 {w['latency_p99_ms']} ms",
    f"  by kind: {w['sent_by_kind']}",
    f"  2xx {w['ok']}, 429 {t429} (allowed), other statuses {other} {statuses or ''}, socket errors {sock}",
    f"attacker: {a['requests']} wrong-password logins: 401 {a['unauthorized_401']}, 429 {a['throttled_429']}, "
    f"other {a['other_status']}, socket errors {a['socket_errors']}",
    f"server RSS: {start_m:.0f} MiB before the load; after {warm} s warm-up: first {win} s mean {first_m:.0f} MiB, "
    f"last {win} s mean {last_m:.0f} MiB ({last_m - first_m:+.0f}); max {peak:.0f} MiB  ({out}/rss.csv)"
    + ("" if max_growth is not None else " [not judged: run shorter than 60 s]"),
    f"audit verify: {'ok' if audit_rc == 0 else 'FAILED'} — {audit[-1] if audit else ''}",
]
if non2xx:
    lines.append("non-2xx by route (server metrics): " + "; ".join(f"{m} {r} {s}: {n}" for (m, r, s), n in non2xx))
lines += [f"FAIL: {p}" for p in problems] or ["soak: ok"]
text = "\n".join(lines)
print(text)
open(f"{out}/summary.txt", "w").write(text + "\n")
sys.exit(1 if problems else 0)
PY
