#!/usr/bin/env bash
# Fails when a crate under actors/ or plugins/ depends on actix-web (DESIGN.md §2: only
# runtime speaks HTTP), or when the HTTP layer does the door's work (below). `cargo tree -i` exits 101 when the package is absent, so the plain
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

# The HTTP layer is an adapter over the service operations (careport_actors::door): it imports
# neither the store nor sqlx, reaches no store handle, vault, cache or audit writer itself, and
# checks no role by hand (issue #13, "one door"). Role *parsing* of a request body
# (`Role::from_str`) is allowed; comparisons are not.
http=runtime/src/http
if grep -rnE 'careport_store|sqlx' "$http"; then
  echo "FAIL: $http imports the store or sqlx; go through careport_actors::door"
  bad=1
else
  echo "ok: $http does not import the store"
fi
if grep -rnE 'services\.(db|vault|cache|clinic|audit|store_handle)\b|\.identity\.audit' "$http"; then
  echo "FAIL: $http reaches the store, vault, cache or audit writer directly; call a door operation"
  bad=1
else
  echo "ok: $http reaches data only through door operations"
fi
if grep -rnE '\.role\(\)|(==|!=) *Role::|Role::[A-Za-z]+ *(==|!=)|\.role *(==|!=)|staff_role *(==|!=)|StaffRole::' "$http"; then
  echo "FAIL: $http checks a role by hand; the policies and the door decide"
  bad=1
else
  echo "ok: $http checks no role by hand"
fi
exit $bad
