#!/usr/bin/env bash
# Local MiniLM embedding throughput (batch 1 and 32, 1 and 2 threads), latency of a single
# request with 16 in flight through the batching pool, and peak RSS. Release build.
#
#   bash bench/embeddings.sh [MODEL_DIR]     (default: ./data/models/all-MiniLM-L6-v2)
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
