#!/usr/bin/env bash
# Memory of careport's OCR on a long scanned PDF: the peak resident size of `careport ocr` on
# the same typed A4 pages as an image-only PDF of 5 and of 50 pages. Pages are rasterised by the
# worker that reads them (each with its own rasteriser view), so the peak should not grow with
# the page count. The server's jobs read pages the same way (careport_ml::ocr::Document).
#
#   cargo build --release -p careport && bash bench/ocr/memory.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${CAREPORT_BIN:-${CARGO_TARGET_DIR:-/var/cache/careport-target}/release/careport}
[[ -x $BIN ]] || { echo "no careport binary at $BIN: cargo build --release -p careport" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
echo "| pages | file MiB | seconds | peak RSS MiB |"
echo "|---|---|---|---|"
for n in 5 50; do
  python3 "$HERE/make_pages.py" "$n" "$DIR/$n" >/dev/null 2>&1
  pdf="$DIR/$n/scanned.pdf"
  /usr/bin/time -f "%e %M" -o "$DIR/time" "$BIN" ocr "$pdf" >/dev/null 2>"$DIR/err" || { cat "$DIR/err" >&2; exit 1; }
  read -r secs kib < "$DIR/time"
  printf '| %s | %.1f | %s | %d |\n' "$n" "$(echo "$(stat -c %s "$pdf") / 1048576" | bc -l)" "$secs" "$((kib / 1024))"
done
