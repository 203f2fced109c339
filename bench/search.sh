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

# backend `pgvector`: the same shape of data (clustered synthetic vectors, 1,000 documents, a
# patient's filter hiding the 90 % that are clinician-only) in a fresh PostgreSQL database,
# searched by careport's own query (careport_store::knowledge::pg_vector_search: the partial HNSW
# index per space, iterative scans, the filter inside the scan). Skipped with SKIP_PG=1.
# CAREPORT_BENCH_PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres); a database
# careport_bench_search is dropped and created; pgvector must be installed (.ci/install-pgvector.sh).
if [ -z "${SKIP_PG:-}" ]; then
  ADMIN=${CAREPORT_BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
  psql "$ADMIN" -qc "DROP DATABASE IF EXISTS careport_bench_search WITH (FORCE)" -c "CREATE DATABASE careport_bench_search"
  psql "${ADMIN%/*}/careport_bench_search" -qc "CREATE EXTENSION IF NOT EXISTS vector"
  psql "${ADMIN%/*}/careport_bench_search" -qc "ALTER DATABASE careport_bench_search SET maintenance_work_mem = '1GB'"
  cargo run --release -q -p careport-store --example pg_search_bench -- --url "${ADMIN%/*}/careport_bench_search" "$@"
fi
