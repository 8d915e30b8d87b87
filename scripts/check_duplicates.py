#!/usr/bin/env python3
"""CI gate: no material repeats in the library, runner, tests, scripts, benchmarks and the notebooks' code.

usage: scripts/check_duplicates.py [--min-lines N] [--show-all]

Material repeat: a pair of places that the `duplicates` tool reports at --min-lines 10 (ten or more shared
lines of code -- blank lines, comments, lone punctuation and imports do not count -- identical, or of the same
shape with other names and values) and that the tool does not mark `boilerplate`. Boilerplate pairs and
shorter runs are listed as notes only. Notebooks take part: each notebook's code cells are copied into
NAME.ipynb.cs (one `// cell <id>` line before each cell) in a scratch tree, and rows that point into one say
which cells. Exit 0: none material (or `duplicates` is not installed: skipped with a note), 1: material repeats.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW = re.compile(r"^(D\d+)\s+(\S+?):(\d+)-(\d+)\s+~\s+(\S+?):(\d+)-(\d+)(.*)$")


def tracked_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if f and os.path.isfile(os.path.join(ROOT, f))]


def notebook_code(path):
    """The notebook's code cells as one C# file, and line number -> cell id."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    lines, cell_of = [], {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        cid = cell.get("id", "?")
        lines.append(f"// cell {cid}")
        for line in src.split("\n"):
            lines.append(line)
            cell_of[len(lines)] = cid
    return "\n".join(lines) + "\n", cell_of


def where(path, a, b, maps):
    if path in maps:
        cells = []
        for n in range(int(a), int(b) + 1):
            c = maps[path].get(n)
            if c and c not in cells:
                cells.append(c)
        return f"{path[:-3]} (cell{'s' if len(cells) > 1 else ''} {', '.join(cells)})"
    return f"{path}:{a}-{b}"


def main(argv):
    min_lines = 10
    show_all = "--show-all" in argv
    if "--min-lines" in argv:
        min_lines = int(argv[argv.index("--min-lines") + 1])
    tool = shutil.which("duplicates")
    if tool is None:
        print("check_duplicates: note: the `duplicates` command is not installed; duplicate check skipped", file=sys.stderr)
        return 0
    maps = {}
    with tempfile.TemporaryDirectory(prefix="tf-dups-") as tree:
        for rel in tracked_files():
            dest = os.path.join(tree, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if rel.endswith(".ipynb"):
                code, cell_of = notebook_code(os.path.join(ROOT, rel))
                with open(dest + ".cs", "w", encoding="utf-8") as f:
                    f.write(code)
                maps[rel + ".cs"] = cell_of
            else:
                shutil.copyfile(os.path.join(ROOT, rel), dest)
        p = subprocess.run([tool, "--repo", tree, "--min-lines", str(min_lines), "--most", "200", "--seconds", "120"],
                           capture_output=True, text=True)
    output = p.stdout + p.stderr
    material, notes, other = [], [], []
    for line in output.splitlines():
        m = ROW.match(line.strip())
        if not m:
            other.append(line)
            continue
        _, pa, a1, a2, pb, b1, b2, rest = m.groups()
        text = f"{where(pa, a1, a2, maps)} ~ {where(pb, b1, b2, maps)}{rest}"
        (notes if "boilerplate" in rest else material).append(text)
    for line in other:
        if line.startswith("incomplete:"):
            print(f"check_duplicates: error: the duplicates tool did not finish: {line}", file=sys.stderr)
            return 1
    print(f"duplicates --min-lines {min_lines}: {len(material)} material repeat(s), {len(notes)} boilerplate pair(s)")
    for t in material:
        print(f"  MATERIAL {t}")
    if show_all:
        for t in notes:
            print(f"  note     {t}")
        for line in other:
            print(f"  {line}")
    if material:
        print("Factor the repeated code into one place (a library member, a test helper), or explain why not.")
    return 1 if material else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
