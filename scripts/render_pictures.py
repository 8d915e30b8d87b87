#!/usr/bin/env python3
"""Renders the README's pictures: per case study, the one chart that tells its story, as a PNG.

usage: scripts/render_pictures.py RUN_DIR [OUT_DIR] [--width PX] [--scale N]

RUN_DIR is a runner output folder (NAME.ipynb executed + NAME.html). For each executed notebook the chart is
  1. the output of the code cell tagged "readme-figure" (cell metadata tags), else
  2. the cell named in scripts/readme-figures.json: {"NAME": {"cell": "<cell id>", "chart": <index, default 0>}};
notebooks with neither are skipped with a note. The chart is put alone on a small page with the plotly.js the
runner embedded in NAME.html (offline), Chromium lays it out once to measure the drawn SVG, then takes a
screenshot of exactly that size: OUT_DIR/NAME.png (default docs/images). Exit 1 if a selected chart is
missing or did not draw, 3 without Chromium.
"""
import json
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tfchromium  # noqa: E402

TAG = "readme-figure"
CHART_MARKER = "data-tf-run-plotly-chart"
PLOTLY_SCRIPT = re.compile(r"<script[^>]*data-tf-run-plotly-js[^>]*>.*?</script>", re.S | re.I)


def text(v):
    return "".join(v) if isinstance(v, list) else (v or "")


def chart_outputs(cell):
    out = []
    for o in cell.get("outputs", []):
        html = text(o.get("data", {}).get("text/html"))
        if CHART_MARKER in html:
            out.append(PLOTLY_SCRIPT.sub("", html))
    return out


def select(nb, name, config):
    """(cell id, chart html) of the picture for this notebook, or None; raises with the reason when misconfigured."""
    tagged = [c for c in nb["cells"] if TAG in (c.get("metadata", {}).get("tags") or [])]
    if len(tagged) > 1:
        raise ValueError(f"{name}: {len(tagged)} cells are tagged '{TAG}'; tag exactly one")
    index = 0
    if tagged:
        cell = tagged[0]
    elif name in config:
        entry = config[name]
        index = int(entry.get("chart", 0))
        cell = next((c for c in nb["cells"] if c.get("id") == entry["cell"]), None)
        if cell is None:
            raise ValueError(f"{name}: scripts/readme-figures.json names cell '{entry['cell']}', which the notebook does not have")
    else:
        return None
    charts = chart_outputs(cell)
    if index >= len(charts):
        raise ValueError(f"{name}: cell '{cell.get('id')}' shows {len(charts)} chart(s); chart {index} was asked for "
                         "(did the cell fail, or is it not the chart cell?)")
    return cell.get("id"), charts[index]


def page(plotly_js, chart_html, width):
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
            f"<style>html,body{{margin:0;padding:0;background:#fff}} #chart{{width:{width}px}} .modebar-container{{display:none!important}}</style>\n"
            f"{plotly_js}\n</head><body><div id=\"chart\">\n{chart_html}\n</div></body></html>\n")


def measure(chromium, path):
    """Width and height of the drawn chart (its first svg.main-svg), or None when it did not draw."""
    rc, dom, console = tfchromium.dump_dom(chromium, path)
    errors = [c for c in console if "Uncaught" in c or ":ERROR:CONSOLE" in c]
    for n in tfchromium.parse(dom).walk():
        if n.tag == "svg" and "main-svg" in n.classes():
            try:
                return int(float(n.attrs["width"])), int(float(n.attrs["height"])), errors
            except (KeyError, ValueError):
                break
    return None, None, errors


def main(argv):
    args, width, scale = [], 900, 2
    it = iter(argv)
    for a in it:
        if a == "--width":
            width = int(next(it))
        elif a == "--scale":
            scale = float(next(it))
        elif a.startswith("-"):
            print(__doc__.strip(), file=sys.stderr)
            return 2
        else:
            args.append(a)
    if not 1 <= len(args) <= 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    run_dir = args[0]
    out_dir = args[1] if len(args) > 1 else os.path.join(os.path.dirname(HERE), "docs", "images")
    chromium = tfchromium.find()
    if chromium is None:
        print("render_pictures: error: chromium not found (apt-get install chromium)", file=sys.stderr)
        return 3
    with open(os.path.join(HERE, "readme-figures.json"), encoding="utf-8") as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    os.makedirs(out_dir, exist_ok=True)
    # NAME.failed.ipynb: a failed run kept beside a good one (tf-run), not a notebook of its own
    notebooks = sorted(f for f in os.listdir(run_dir) if f.endswith(".ipynb") and not f.endswith(".failed.ipynb"))
    if not notebooks:
        print(f"render_pictures: error: no executed notebooks in {run_dir}", file=sys.stderr)
        return 2
    failed = 0
    for nbfile in notebooks:
        name = nbfile[:-len(".ipynb")]
        with open(os.path.join(run_dir, nbfile), encoding="utf-8") as f:
            nb = json.load(f)
        try:
            picked = select(nb, name, config)
        except ValueError as e:
            print(f"FAIL {e}")
            failed += 1
            continue
        if picked is None:
            print(f"skip {name}: no cell tagged '{TAG}' and no entry in scripts/readme-figures.json")
            continue
        cell_id, chart = picked
        with open(os.path.join(run_dir, name + ".html"), encoding="utf-8") as f:
            m = PLOTLY_SCRIPT.search(f.read())
        if m is None:
            print(f"FAIL {name}: {name}.html carries no plotly.js")
            failed += 1
            continue
        with tempfile.TemporaryDirectory(prefix="tf-picture-") as tmp:
            html = os.path.join(tmp, name + ".html")
            with open(html, "w", encoding="utf-8") as f:
                f.write(page(m.group(0), chart, width))
            w, h, errors = measure(chromium, html)
            if w is None or errors:
                print(f"FAIL {name}: cell '{cell_id}': the chart did not draw {errors}")
                failed += 1
                continue
            png = os.path.abspath(os.path.join(out_dir, name + ".png"))
            rc, _, err = tfchromium.run(chromium, tfchromium.file_url(html), [
                f"--window-size={w},{h}", f"--force-device-scale-factor={scale:g}",
                "--virtual-time-budget=10000", f"--screenshot={png}"])
            if rc != 0 or not os.path.isfile(png):
                print(f"FAIL {name}: chromium could not take the screenshot (exit {rc})")
                failed += 1
                continue
            print(f"ok   {name}: cell '{cell_id}' -> {os.path.relpath(png)} ({w}x{h} CSS px, scale {scale:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
