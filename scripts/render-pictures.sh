#!/usr/bin/env bash
# Regenerates docs/images/<notebook>.png, the README's one chart per case study, from the runner's output.
#   scripts/render-pictures.sh                 run every notebook at its default parameters (minutes), then render
#   scripts/render-pictures.sh --quick         the same with the quick configuration (a preview; not for the README)
#   scripts/render-pictures.sh --from DIR      render from an existing run (e.g. artifacts/ after `dotnet run --project lib/TrainingForensics.Runner`)
# Which chart: scripts/readme-figures.json, or a notebook cell tagged "readme-figure". Needs Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
from="" quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="$2"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    *) echo "usage: $0 [--quick | --from DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$from" ]; then
  from=$(mktemp -d -t tf-pictures-XXXXXX)
  trap 'rm -rf "$from"' EXIT
  dotnet run --project lib/TrainingForensics.Runner -- notebooks --out "$from" "${quick[@]}"
fi
python3 scripts/render_pictures.py "$from" docs/images
