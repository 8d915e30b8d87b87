#!/usr/bin/env bash
# CI step: runs every notebook in its quick configuration, then checks what a reader gets:
#   nbformat's validator on the committed and the executed notebooks, and each HTML page in headless Chromium
#   (no JavaScript error, every chart drawn). Each check skips with a note when its tool is not installed.
#   scripts/check-executed.sh [--keep DIR]     (--keep: write the run there instead of a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
out=""
if [ "${1:-}" = "--keep" ]; then out="$2"; mkdir -p "$out"; else out=$(mktemp -d -t tf-executed-XXXXXX); trap 'rm -rf "$out"' EXIT; fi
status=0
dotnet run --project lib/TrainingForensics.Runner -- notebooks --quick --out "$out" || status=1
python3 scripts/validate_notebooks.py notebooks "$out" || status=1
python3 scripts/check_pages.py "$out" || status=1
exit "$status"
