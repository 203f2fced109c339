#!/usr/bin/env bash
# Build the example plugins and write each module's SHA-256 into its plugin.toml. The built
# modules are committed, so neither CI nor careport needs these tools; integrators do.
#
#   bash plugins/examples/build.sh        (needs: apt-get install -y clang lld; npm for AssemblyScript)
set -euo pipefail
cd "$(dirname "$0")"

sum() {  # dir, module: put the module's SHA-256 into dir/plugin.toml
  local digest
  digest=$(sha256sum "$1/$2" | cut -d' ' -f1)
  sed -i "s/^sha256 = \".*\"/sha256 = \"$digest\"/" "$1/plugin.toml"
  echo "$1: $2 $(stat -c %s "$1/$2") bytes, sha256 $digest"
}

# C, with clang and lld: no libc, no WASI; the module exports its memory and the contract.
clang --target=wasm32 -O2 -nostdlib -Wall -Wextra -Werror -Wl,--no-entry -Wl,--export-dynamic \
  -o redact-phi/redact_phi.wasm redact-phi/redact_phi.c
sum redact-phi redact_phi.wasm


# AssemblyScript (a TypeScript dialect), with its compiler from npm: no runtime GC (`stub`),
# no `env.abort` import, so the module needs nothing from the host.
(cd lab-values && { [ -x node_modules/.bin/asc ] || npm install --no-audit --no-fund >/dev/null; } && npm run -s build)
sum lab-values lab_values.wasm

# Language packs: one C module per locale, its catalogue (lang-xx/catalog.json) compiled in.
for dir in lang-*/; do
  dir=${dir%/}
  loc=${dir#lang-}
  python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
text = json.dumps(json.load(open(f"{d}/catalog.json", encoding="utf-8")), ensure_ascii=False, separators=(",", ":"))
raw = text.encode("utf-8")
body = "".join("\\x%02x" % b for b in raw)
open(f"{d}/catalog.h", "w").write(f'static const char CATALOG[] = "{body}";\n')
PY
  clang --target=wasm32 -O2 -nostdlib -Wall -Wextra -Werror -Wl,--no-entry -Wl,--export-dynamic -I "$dir" \
    -o "$dir/lang_$loc.wasm" language-packs/language_pack.c
  rm "$dir/catalog.h"
  sum "$dir" "lang_$loc.wasm"
done
