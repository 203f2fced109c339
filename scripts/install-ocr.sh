#!/usr/bin/env bash
# Install Tesseract (the OCR engine careport links in process), its development files (the
# build needs them: the `tesseract` crate's bindings), and the language packs of the portal's
# six languages plus orientation detection. Idempotent: installs only what is missing.
#
#   bash scripts/install-ocr.sh
set -euo pipefail
PACKAGES=(tesseract-ocr libtesseract-dev libleptonica-dev clang libclang-dev pkg-config
  tesseract-ocr-eng tesseract-ocr-spa tesseract-ocr-fra tesseract-ocr-ara tesseract-ocr-chi-sim
  tesseract-ocr-hin tesseract-ocr-osd)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "OCR: Tesseract and the language packs are installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "OCR: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
  || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
tesseract --list-langs 2>/dev/null | tail -n +2 | tr '\n' ' '; echo
