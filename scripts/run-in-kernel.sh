#!/usr/bin/env bash
# Runs notebooks in the real .NET Interactive kernel (the one VS Code, Jupyter and Binder use) through dotnet-repl,
# each in its quick configuration unless --full, and checks what a reader gets: no cell error, charts that are
# HTML plots with plotly.js embedded (no CDN). Writes, per notebook NAME, into OUT (default artifacts/kernel):
#   prepared/NAME.ipynb (the parameterised copy, from `tf-run --prepare`), NAME.ipynb (executed by the kernel),
#   NAME.figures.json (the figures it recorded), NAME.html (its outputs as one page), NAME.log (dotnet-repl's output).
#   scripts/run-in-kernel.sh [--full] [--offline] [--out OUT] [--jupyter NAME]... [--compare DIR] [--bad-library NAME]
#                            [NOTEBOOK.ipynb ...]
# OUT must be inside the repository (dotnet finds the pinned tools through .config/dotnet-tools.json from the
# working folder). --jupyter NAME also executes NAME through Jupyter (nbclient, via nbconvert, with the kernel's
# .net-csharp kernelspec, as Binder does; installed with `dotnet interactive jupyter install` if missing) and requires
# the same checks and the same figures as dotnet-repl's run. --compare DIR requires each notebook's figures to equal
# DIR/NAME.figures.json (a tf-run output folder), timings aside. --offline runs each kernel in a network namespace
# with no interface up (`unshare -n`, root), as on workshop Wi-Fi: the kernel must find its packages in the NuGet cache
# and the charts must not need a CDN (the Jupyter run keeps the network: nbclient talks to the kernel over loopback);
# where unshare is not permitted it says so and runs with the network. --bad-library NAME also runs NAME as a reader
# who skipped or forgot the build would: with no built library (its first code cell must fail naming
# made-by-dotnet-build, the folder named for the command) and with a library older than its sources (the setup cell
# must fail naming `dotnet build`); the built library is put back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=artifacts/kernel
quick=--quick
notebooks=()
jupyter_names=()
compare=""
bad_library=()
offline=()
while (($#)); do
  case "$1" in
    --full) quick=""; shift ;;
    --out) out="$2"; shift 2 ;;
    --jupyter) jupyter_names+=("$2"); shift 2 ;;
    --compare) compare="$2"; shift 2 ;;
    --bad-library) bad_library+=("$2"); shift 2 ;;
    --offline)
      if unshare -n true 2>/dev/null; then offline=(unshare -n --); else echo "kernel: unshare -n is not permitted here: running with the network"; fi
      shift ;;
    *) notebooks+=("$1"); shift ;;
  esac
done
((${#notebooks[@]})) || notebooks=(notebooks/*.ipynb)
mkdir -p "$out"
out=$(cd "$out" && pwd)
case "$out/" in "$root"/*) ;; *) echo "run-in-kernel: --out must be inside $root" >&2; exit 2 ;; esac

dotnet tool restore >/dev/null
# builds tf-run and the library; the library's build copies it to lib/TrainingForensics/bin/made-by-dotnet-build/
dotnet build lib/TrainingForensics.Runner -v quiet -nologo >/dev/null
rm -rf "$out/prepared"
dotnet run --no-build --project lib/TrainingForensics.Runner -- "${notebooks[@]}" $quick --prepare --out "$out/prepared"

status=0
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb" .ipynb)
  rm -f "$out/$name.ipynb" "$out/$name.figures.json"
  start=$SECONDS
  # the kernel resolves relative #r paths against its working folder, as VS Code and Jupyter do with the notebook's
  if (cd "$out/prepared" && TF_FIGURES="$out/$name.figures.json" timeout 1800 "${offline[@]}" dotnet dotnet-repl --run "$name.ipynb" \
        --exit-after-run --output-format ipynb --output-path "$out/$name.ipynb" >"$out/$name.log" 2>&1); then rc=0; else rc=$?; fi
  echo "kernel: $name: dotnet-repl exit $rc in $((SECONDS - start)) s${offline:+ (no network)}"
  if [ ! -f "$out/$name.ipynb" ]; then echo "kernel: $name: no executed notebook (see $out/$name.log)"; tail -20 "$out/$name.log"; status=1; continue; fi
  python3 scripts/kernel_outputs.py check "$out/$name.ipynb" || status=1
  [ "$rc" = 0 ] || status=1
  python3 scripts/kernel_outputs.py page "$out/$name.ipynb" "$out/$name.html"
  if [ -n "$compare" ]; then
    python3 scripts/kernel_outputs.py figures "$compare/$name.figures.json" "$out/$name.figures.json" || status=1
  fi
done

for name in "${jupyter_names[@]}"; do
  if ! command -v jupyter >/dev/null || ! jupyter nbconvert --version >/dev/null 2>&1; then
    echo "kernel: Jupyter (nbconvert/nbclient) is not installed: the Jupyter run of $name is skipped"; continue
  fi
  jupyter kernelspec list 2>/dev/null | grep -q '\.net-csharp' || (cd "$out/prepared" && dotnet dotnet-interactive jupyter install >/dev/null)
  rm -f "$out/$name.jupyter.ipynb" "$out/$name.jupyter.figures.json"
  start=$SECONDS
  if (cd "$out/prepared" && TF_FIGURES="$out/$name.jupyter.figures.json" timeout 1800 jupyter nbconvert --to notebook --execute \
        --ExecutePreprocessor.kernel_name=.net-csharp --ExecutePreprocessor.timeout=1200 \
        --output-dir "$out" --output "$name.jupyter" "$name.ipynb" >"$out/$name.jupyter.log" 2>&1); then rc=0; else rc=$?; fi
  echo "jupyter: $name: nbconvert --execute exit $rc in $((SECONDS - start)) s"
  [ "$rc" = 0 ] || { tail -20 "$out/$name.jupyter.log"; status=1; continue; }
  python3 scripts/kernel_outputs.py check "$out/$name.jupyter.ipynb" || status=1
  python3 scripts/kernel_outputs.py figures "$out/$name.figures.json" "$out/$name.jupyter.figures.json" || status=1
done
library=lib/TrainingForensics/bin/made-by-dotnet-build
for name in "${bad_library[@]}"; do
  [ -f "$out/prepared/$name.ipynb" ] || { echo "kernel: --bad-library $name: not among the notebooks run"; status=1; continue; }
  setup_cell=$(python3 -c 'import json,sys; cs=[c for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"]=="code"]; print(next(i for i,c in enumerate(cs,1) if "TorchEnvironment.Setup" in "".join(c["source"])))' "$out/prepared/$name.ipynb")
  built=$(stat -c %Y "$library/TrainingForensics.dll")
  hidden="$out/library-hidden"
  rm -rf "$hidden"; mv "$library" "$hidden"
  trap 'rm -rf "$library"; mv "$hidden" "$library"' EXIT
  (cd "$out/prepared" && timeout 600 dotnet dotnet-repl --run "$name.ipynb" --exit-after-run --output-format ipynb \
     --output-path "$out/$name.unbuilt.ipynb" >"$out/$name.unbuilt.log" 2>&1) || true
  mv "$hidden" "$library"; trap - EXIT
  python3 scripts/kernel_outputs.py fails-at "$out/$name.unbuilt.ipynb" 1 CS0006 made-by-dotnet-build || status=1
  touch -d '2000-01-01' "$library/TrainingForensics.dll"
  trap 'touch -d "@$built" "$library/TrainingForensics.dll"' EXIT
  (cd "$out/prepared" && timeout 600 dotnet dotnet-repl --run "$name.ipynb" --exit-after-run --output-format ipynb \
     --output-path "$out/$name.stale.ipynb" >"$out/$name.stale.log" 2>&1) || true
  touch -d "@$built" "$library/TrainingForensics.dll"; trap - EXIT
  python3 scripts/kernel_outputs.py fails-at "$out/$name.stale.ipynb" "$setup_cell" "is older than its source" "dotnet build" || status=1
done
exit "$status"
