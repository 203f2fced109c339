#!/usr/bin/env bash
# Local MiniLM embedding throughput (batch 1 and 32, 1 and 2 threads), latency of a single
# request with 16 in flight through the batching pool, and peak RSS. Release build. Then, side by
# side in the same run, the Python stack it replaces (bench/torch/README.md): sentence-transformers
# on CPU torch from PyPI, one thread each, embed_bench's 1,000 sentences, batch 32 and 1; prints
#   RATIO batch 32: careport X / torch Y = Z×   (sentences/s; likewise batch 1)
#   COSINE worst W, mean M over N sentences     (careport's vectors against torch's)
#
#   bash bench/embeddings.sh [MODEL_DIR]     (default: ./data/models/all-MiniLM-L6-v2)
#
# TORCH=0 skips the comparison; ROUNDS=N (default 1) alternates torch and careport N times and
# reports the median of each; TORCH_VENV is the venv bench/torch/setup.sh makes (first run: about
# 2.7 GB from PyPI).
#
# Each thread count runs in its own process with CANDLE_NUM_THREADS and RAYON_NUM_THREADS set:
# candle's element-wise pool is process-wide and sized once from them, so "1 thread" really
# is one.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
MODEL=${1:-./data/models/all-MiniLM-L6-v2}
[ -f "$MODEL/model.safetensors" ] || bash scripts/install-model.sh "$(dirname "$(dirname "$MODEL")")"
cargo build --release -q -p careport-ml --example embed_bench
BIN="$CARGO_TARGET_DIR/release/examples/embed_bench"
for threads in 1 2; do
  for batch in 1 32; do
    CANDLE_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads "$BIN" "$MODEL" "$threads" "$batch" | tail -n 2
  done
done
CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 "$BIN" "$MODEL" latency

[ "${TORCH:-1}" = 0 ] && exit 0

# --- Side by side with sentence-transformers on CPU torch (bench/torch/README.md) ---------------
TORCH_VENV=${TORCH_VENV:-/var/cache/careport-ci-data/torch-venv}
export TORCH_VENV
bash bench/torch/setup.sh
cargo build --release -q -p careport --bin careport
CAREPORT="$CARGO_TARGET_DIR/release/careport"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# embed_bench cannot print its sentences: sentences.py is a copy of its list, in its order.
python3 bench/torch/sentences.py > "$WORK/sentences.txt"
N=$(wc -l < "$WORK/sentences.txt")
printf '\n%s sentences, 1 thread each, side by side (load average %s)\n' "$N" "$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "${ROUNDS:-1}"); do
  # torch: batch 32 (its vectors kept for the cosine), then batch 1.
  "$TORCH_VENV/bin/python" bench/torch/embed.py "$MODEL" "$WORK/sentences.txt" --threads 1 \
    --batch 32 --batch 1 --vectors "$WORK/torch.npy" | tee -a "$WORK/torch.jsonl"
  # careport right after, the same way the rows above are measured.
  for batch in 32 1; do
    CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 "$BIN" "$MODEL" 1 "$batch" | tail -n 1 | tee -a "$WORK/careport.txt"
  done
done
# careport's vectors for the same sentences, through the CLI and the configured local provider.
start=$(date +%s.%N)
CAREPORT__ML__EMBEDDING_PROVIDER=local CAREPORT__ML__LOCAL__MODEL_DIR="$MODEL" CAREPORT__ML__LOCAL__THREADS=1 \
  CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 "$CAREPORT" embed --json --file "$WORK/sentences.txt" > "$WORK/careport.jsonl"
awk -v s="$start" -v e="$(date +%s.%N)" -v n="$N" \
  'BEGIN { printf "careport embed --json --file: %d vectors in %.2f s (process start and model load included)\n", n, e - s }'

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for batch in 32 1; do
  c=$(sed -n "s/^threads=1 batch=$batch: \([0-9.]*\) sentences\/s.*/\1/p" "$WORK/careport.txt" | median)
  t=$("$TORCH_VENV/bin/python" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("batch") == int(sys.argv[2]):
        print(r["sentences_per_s"])' "$WORK/torch.jsonl" "$batch" | median)
  [ -n "$c" ] && [ -n "$t" ] || { echo "no batch $batch figure (careport '$c', torch '$t')" >&2; exit 1; }
  awk -v b="$batch" -v c="$c" -v t="$t" 'BEGIN { printf "RATIO batch %s: careport %.1f / torch %.1f = %.2f×\n", b, c, t, c / t }'
done
"$TORCH_VENV/bin/python" bench/torch/compare.py "$WORK/careport.jsonl" "$WORK/torch.npy" --sentences "$WORK/sentences.txt"
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
