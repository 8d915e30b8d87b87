#!/usr/bin/env python3
"""Checks notebooks executed by the .NET Interactive kernel, and turns them into pages a browser can check.

usage: scripts/kernel_outputs.py check EXECUTED.ipynb...        every code cell ran, no error output, charts are HTML plots
       scripts/kernel_outputs.py page EXECUTED.ipynb OUT.html   the notebook's outputs in one page, in order, as a
                                                                notebook front end shows them (VS Code: one webview)
       scripts/kernel_outputs.py figures A.json B.json          same figures in both (timings, unit "s", aside)
       scripts/kernel_outputs.py fails-at EXECUTED.ipynb N TEXT...  the first error is in code cell N and its message
                                                                holds every TEXT (a bad-input run failing as designed)

Exit codes: 0 fine, 1 a check failed, 2 bad arguments or unreadable input.
"""
import html
import os
import re
import json
import sys

CHART_MARKER = "data-tf-run-plotly-chart"
PLOTLY_JS_MARKER = "data-tf-run-plotly-js"


def text(value):
    return "".join(value) if isinstance(value, list) else (value or "")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"{path}: cannot read: {e}", file=sys.stderr)
        sys.exit(2)


def check(path):
    nb = load(path)
    problems, charts, plotly_js = [], 0, 0
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for i, cell in enumerate(code_cells, 1):
        outputs = cell.get("outputs", [])
        source = text(cell.get("source")).strip()
        for o in outputs:
            if o.get("output_type") == "error":
                problems.append(f"code cell {i}: {o.get('ename')}: {text(o.get('evalue'))[:400]}")
            data = o.get("data", {})
            page = text(data.get("text/html"))
            charts += page.count(CHART_MARKER)
            plotly_js += page.count(PLOTLY_JS_MARKER)
            if "dni-treeview" in page and "Plotly" in page:
                problems.append(f"code cell {i}: a chart shown as the kernel's object tree, not a plot")
            own = re.sub(r"<script[^>]*" + PLOTLY_JS_MARKER + r"[^>]*>.*?</script>", "", page, flags=re.S)
            # (the kernel's own Jupyter bootstrap output uses require.js against its local port: not a chart, left alone)
            is_chart = CHART_MARKER in page or "Plotly.newPlot" in page or "plotly" in page.lower()
            if is_chart and ("cdn.plot.ly" in own or "require.config" in own or "<script src=" in own):
                problems.append(f"code cell {i}: a chart that loads plotly.js from the network")
    if charts and plotly_js == 0:
        problems.append(f"{charts} charts but plotly.js is embedded nowhere: they cannot draw offline")
    for p in problems:
        print(f"{path}: {p}")
    print(f"{path}: {len(code_cells)} code cells, {charts} charts, plotly.js embedded {plotly_js}×, {len(problems)} problems")
    return not problems


def page(path, out):
    nb = load(path)
    parts = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if "text/html" in data:
                parts.append(f"<div class=\"output\">{text(data['text/html'])}</div>")
            elif "text/plain" in data:
                parts.append(f"<pre>{html.escape(text(data['text/plain']))}</pre>")
            elif o.get("output_type") == "stream":
                parts.append(f"<pre>{html.escape(text(o.get('text')))}</pre>")
            elif o.get("output_type") == "error":
                parts.append(f"<pre class=\"error\">{html.escape(text(o.get('evalue')))}</pre>")
    doc = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n{}\n</body></html>\n".format(
        html.escape(path), "\n".join(parts))
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
    os.replace(tmp, out)
    return True


def figures(a, b):
    fa, fb = load(a)["figures"], load(b)["figures"]
    problems = []
    for name in sorted(set(fa) | set(fb)):
        if name not in fa or name not in fb:
            problems.append(f"{name}: only in {a if name in fa else b}")
            continue
        if fa[name].get("unit") == "s":
            continue
        va, vb = fa[name]["value"], fb[name]["value"]
        if va != vb:
            problems.append(f"{name}: {va!r} vs {vb!r}")
    for p in problems:
        print(f"figures differ: {p}")
    print(f"{a} vs {b}: {len(fa)} figures, {len(problems)} differences (timings aside)")
    return not problems


def fails_at(path, cell, expected):
    nb = load(path)
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for i, c in enumerate(code_cells, 1):
        errors = [o for o in c.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            continue
        message = " ".join(text(o.get("evalue")) + " " + text(o.get("traceback")) for o in errors)
        missing = [t for t in expected if t not in message]
        ok = i == cell and not missing
        print(f"{path}: first error in code cell {i} (wanted {cell}): {message.strip()[:300]}"
              + (f"; missing {missing}" if missing else ""))
        return ok
    print(f"{path}: no cell failed (wanted code cell {cell} to fail)")
    return False


def main(argv):
    if len(argv) >= 2 and argv[0] == "check":
        return 0 if all([check(p) for p in argv[1:]]) else 1
    if len(argv) == 3 and argv[0] == "page":
        return 0 if page(argv[1], argv[2]) else 1
    if len(argv) == 3 and argv[0] == "figures":
        return 0 if figures(argv[1], argv[2]) else 1
    if len(argv) >= 3 and argv[0] == "fails-at" and argv[2].isdigit():
        return 0 if fails_at(argv[1], int(argv[2]), argv[3:]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
