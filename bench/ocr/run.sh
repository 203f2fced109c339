#!/usr/bin/env bash
# careport's OCR against the Python system's way of running Tesseract, on the same typed A4
# pages, in one run. See bench/ocr/README.md.
#
#   bash bench/ocr/run.sh [N]          N scanned pages (default 20)
#
# Build careport first (release): cargo build --release -p careport
#
# Environment:
#   CAREPORT_BIN      the binary (default ${CARGO_TARGET_DIR:-/var/cache/careport-target}/release/careport)
#   OCR_BENCH_DIR     keep the generated pages here and reuse them on the next run (default: a
#                     temporary directory, removed at the end unless KEEP=1)
#   ROUNDS            timed rounds of each engine (default 3, at least 2); the median is reported
#   BASELINE_JOBS     baseline pages in flight (default 2: the 2 cores of this project's machine)
#   TEXT_LAYER_PAGES  pages of text-layer.pdf (default 200, at least N)
#   SEED              page generator seed (default 20261126)
#
# What runs, each round (order alternates: odd rounds baseline first, even rounds careport first):
#   baseline   Debian's tesseract CLI, one process per page, BASELINE_JOBS at a time,
#              OMP_THREAD_LIMIT=1: `tesseract page-XXX.png out-XXX -l eng` (psm 3, default oem)
#              — what the Python system does through pytesseract, in its fastest setting here
#   careport   `careport ocr --json page-*.png`, then `careport ocr --json scanned.pdf` (careport
#              rasterises at 300 dpi), then `careport ocr --json text-layer.pdf`; careport runs
#              with the caller's environment (its threads are its own business)
# One untimed warm-up of each engine on page 1 comes first (model files into the page cache).
#
# Exit status: 0 when everything ran; 1 on a missing tool; 2 when careport's binary is missing
# (the baseline and the scoring still run, so the rest of the bench is exercised); 3 when a
# careport run failed (its error is in the table).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${1:-20}
ROUNDS=${ROUNDS:-3}
BASELINE_JOBS=${BASELINE_JOBS:-2}
TEXT_LAYER_PAGES=${TEXT_LAYER_PAGES:-200}
SEED=${SEED:-20261126}
CAREPORT_BIN=${CAREPORT_BIN:-${CARGO_TARGET_DIR:-/var/cache/careport-target}/release/careport}

die() { echo "bench/ocr/run.sh: $*" >&2; exit 1; }
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive whole number (got '$N')"
[[ $ROUNDS =~ ^[0-9]+$ ]] && (( ROUNDS >= 2 )) || die "ROUNDS must be 2 or more (got '$ROUNDS')"
(( TEXT_LAYER_PAGES >= N )) || TEXT_LAYER_PAGES=$N

command -v python3 >/dev/null || die "python3 not found"
command -v pdftoppm >/dev/null || die "pdftoppm not found: apt-get install -y poppler-utils"
command -v tesseract >/dev/null || die "tesseract not found: apt-get install -y tesseract-ocr tesseract-ocr-eng"
tesseract --list-langs 2>/dev/null | grep -qx eng || die "tesseract has no 'eng' data: apt-get install -y tesseract-ocr-eng"

have_careport=1
if [[ ! -x $CAREPORT_BIN ]]; then
  have_careport=0
  {
    echo "################################################################################"
    echo "# careport binary not found: $CAREPORT_BIN"
    echo "# Build it first:   cargo build --release -p careport"
    echo "# (or point CAREPORT_BIN at it). Running the baseline and the scoring only;"
    echo "# careport's rows will read 'not run'. Exit status 2."
    echo "################################################################################"
  } >&2
fi

# ---- pages --------------------------------------------------------------------------------------
if [[ -n ${OCR_BENCH_DIR:-} ]]; then
  DATA=$OCR_BENCH_DIR
  mkdir -p "$DATA"
  cleanup_data=0
else
  DATA=$(mktemp -d "${TMPDIR:-/tmp}/careport-ocr-bench.XXXXXX")
  cleanup_data=$(( ${KEEP:-0} ? 0 : 1 ))
fi
WORK=$DATA/run
cleanup() { if (( cleanup_data )); then rm -rf "$DATA"; fi; }
trap cleanup EXIT

stamp="n=$N text_layer_pages=$TEXT_LAYER_PAGES seed=$SEED $(md5sum "$HERE/make_pages.py" | cut -c1-12)"
if [[ -f $DATA/.pages-stamp && $(cat "$DATA/.pages-stamp") == "$stamp" ]]; then
  echo "Reusing the pages in $DATA ($stamp)" >&2
else
  echo "Generating $N pages (text layer: $TEXT_LAYER_PAGES) in $DATA ..." >&2
  rm -f "$DATA/.pages-stamp"
  python3 "$HERE/make_pages.py" "$N" "$DATA" --text-layer-pages "$TEXT_LAYER_PAGES" --seed "$SEED"
  echo "$stamp" > "$DATA/.pages-stamp"
fi
PAGES=()
for ((i = 1; i <= N; i++)); do PAGES+=("$(printf 'page-%03d.png' "$i")"); done

rm -rf "$WORK"
mkdir -p "$WORK"
TIMES=$WORK/times.tsv
: > "$TIMES"
careport_failed=0

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# One page per tesseract process, BASELINE_JOBS at a time; out-XXX.txt beside nothing else.
baseline_batch() { # OUTDIR PAGE...
  local out=$1; shift
  printf '%s\n' "$@" | OMP_THREAD_LIMIT=1 xargs -P "$BASELINE_JOBS" -n 1 sh -c \
    'b=$(basename "$1" .png); exec tesseract "$1" "$0/out-${b#page-}" -l eng 2>>"$0/tesseract.log"' "$out"
}

run_baseline() { # ROUND
  local out=$WORK/baseline rc=0 t0 t1
  rm -rf "$out"; mkdir -p "$out"
  t0=$(now)
  (cd "$DATA" && baseline_batch "$out" "${PAGES[@]}") || rc=$?
  t1=$(now)
  printf 'baseline\t%s\t%s\t%s\t%s\n' "$1" "$(elapsed "$t0" "$t1")" "$rc" "$N" >> "$TIMES"
  (( rc == 0 )) || die "the baseline failed (xargs status $rc); see $out/tesseract.log"
}

run_careport() { # ENGINE ROUND PAGES FILE...
  local engine=$1 round=$2 pages=$3 rc=0 t0 t1
  shift 3
  t0=$(now)
  (cd "$DATA" && CAREPORT__LOG__LEVEL=warn "$CAREPORT_BIN" ocr --json "$@" \
      > "$WORK/$engine.jsonl" 2> "$WORK/$engine.err") || rc=$?
  t1=$(now)
  printf '%s\t%s\t%s\t%s\t%s\n' "$engine" "$round" "$(elapsed "$t0" "$t1")" "$rc" "$pages" >> "$TIMES"
  if (( rc != 0 )); then
    careport_failed=1
    echo "careport ($engine, round $round) exited $rc: $(head -c 300 "$WORK/$engine.err")" >&2
  fi
}

careport_round() { # ROUND
  run_careport careport-png "$1" "$N" "${PAGES[@]}"
  run_careport careport-scanned-pdf "$1" "$N" scanned.pdf
  run_careport careport-text-layer-pdf "$1" "$TEXT_LAYER_PAGES" text-layer.pdf
}

# ---- warm-up, then the timed rounds --------------------------------------------------------------
echo "Warm-up (untimed) ..." >&2
mkdir -p "$WORK/warmup"
(cd "$DATA" && baseline_batch "$WORK/warmup" page-001.png) || die "tesseract failed on page-001.png; see $WORK/warmup/tesseract.log"
if (( have_careport )); then
  (cd "$DATA" && "$CAREPORT_BIN" ocr --json page-001.png > /dev/null 2> "$WORK/warmup/careport.err") \
    || echo "careport's warm-up failed: $(head -c 300 "$WORK/warmup/careport.err")" >&2
fi

for ((r = 1; r <= ROUNDS; r++)); do
  echo "Round $r of $ROUNDS ..." >&2
  if (( r % 2 == 1 )); then
    run_baseline "$r"
    if (( have_careport )); then careport_round "$r"; fi
  else
    if (( have_careport )); then careport_round "$r"; fi
    run_baseline "$r"
  fi
done

# ---- report ------------------------------------------------------------------------------------------
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
[[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -1) ]] && git_rev="$git_rev (uncommitted changes)"
if (( have_careport )); then
  bin_info="$CAREPORT_BIN (built $(date -u -r "$CAREPORT_BIN" '+%Y-%m-%d %H:%M UTC'))"
else
  bin_info="$CAREPORT_BIN (missing: not run)"
fi
{
  echo "## OCR benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)), load average before the report: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- tesseract: $(tesseract --version 2>&1 | head -1), leptonica $(tesseract --version 2>&1 | sed -n 's/^ *leptonica-//p' | head -1)"
  echo "- careport: $bin_info, repository at $git_rev"
  echo "- careport environment: OMP_THREAD_LIMIT=${OMP_THREAD_LIMIT:-unset} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-unset}"
  echo "- pages: $N typed A4 pages (seed $SEED), 300 dpi 8-bit grey PNG; scanned.pdf the same N pages as images; text-layer.pdf $TEXT_LAYER_PAGES pages"
  echo "- $ROUNDS timed rounds each, alternating which engine goes first; median reported"
  echo
  python3 "$HERE/report.py" --data "$DATA" --work "$WORK" --n "$N" --baseline-jobs "$BASELINE_JOBS"
} | tee "$WORK/results.md"
if (( cleanup_data )); then
  echo "(pages and outputs were in a temporary directory, now removed; KEEP=1 or OCR_BENCH_DIR=... keeps them)" >&2
else
  echo "Results also in $WORK/results.md" >&2
fi

(( have_careport )) || exit 2
(( careport_failed == 0 )) || exit 3
