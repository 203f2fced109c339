#!/usr/bin/env bash
# Build and install pgvector into the local PostgreSQL 15 (bookworm has no package for it).
# From Debian trixie's source package, against bookworm's server headers unpacked in a temp
# dir (installing postgresql-server-dev-15 would drag in clang/llvm and may upgrade the
# server). Idempotent: does nothing when the extension is already installed.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
if [ -f /usr/share/postgresql/15/extension/vector.control ]; then
  echo "pgvector: already installed"
  exit 0
fi
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cd "$D"
apt-get update -qq
apt-get download -qq postgresql-server-dev-15
dpkg -x postgresql-server-dev-15_*.deb hdr
mkdir -p lists/partial cache/archives/partial
awk 'BEGIN{RS="";ORS="\n\n"} NR==1' /etc/apt/sources.list.d/debian.sources \
  | sed -e 's/^Types: deb$/Types: deb-src/' -e 's/^Suites: .*/Suites: trixie/' > trixie-src.sources
O="-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts=$D -o Dir::State::lists=$D/lists -o Dir::Cache=$D/cache"
# shellcheck disable=SC2086
apt-get $O update -qq
# shellcheck disable=SC2086
apt-get $O source --download-only pgvector
tar xzf pgvector_*.orig.tar.gz
cd pgvector-*/
M="OPTFLAGS= with_llvm=no PG_CONFIG=$PGBIN/pg_config includedir_server=$D/hdr/usr/include/postgresql/15/server"
# shellcheck disable=SC2086
make -s $M
# shellcheck disable=SC2086
make -s install $M
echo "pgvector: installed"
