#!/usr/bin/env bash
# Vector search for the knowledge base: recall@10 against exact brute force, and per-query
# latency on one thread, with no filter and with a filter that hides 90 % of the vectors.
# Synthetic clustered unit vectors (seeded), release build.
#
#   bash bench/search.sh [--n 100000] [--queries 1000] [--dim 384] [--k 10]
#
# backend `embedded`: careport-ml's in-process index (actors/ml/src/index.rs), which the SQLite
# deployment uses. Build time and index memory go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/careport-target}
echo "backend filter recall@10 p50_ms p99_ms"
cargo run --release -q -p careport-ml --example search_bench -- "$@"

# ---- pgvector (PostgreSQL) ------------------------------------------------------------------
# Placeholder: the `--pg` configuration (same vectors, queries and filter against pgvector,
# printing `pgvector <none|90%> recall@10 p50_ms p99_ms` lines) is added here separately.
# ---------------------------------------------------------------------------------------------
