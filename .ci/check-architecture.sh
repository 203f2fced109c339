#!/usr/bin/env bash
# Fails when a crate under actors/ or plugins/ depends on actix-web (DESIGN.md §2: only
# runtime speaks HTTP). `cargo tree -i` exits 101 when the package is absent, so the plain
# listing is grepped instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
crates=$(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    path = p["manifest_path"]
    if "/actors/" in path or "/plugins/" in path:
        print(p["name"])')
tree=$(mktemp)
trap 'rm -f "$tree"' EXIT
for crate in $crates; do
  # Into a file first: `grep -q` closing the pipe early could fail cargo under pipefail.
  cargo tree -p "$crate" -e normal --prefix none > "$tree"
  if grep -q '^actix-web ' "$tree"; then
    echo "FAIL: $crate depends on actix-web; only runtime may"
    bad=1
  else
    echo "ok: $crate"
  fi
done
exit $bad
