#!/usr/bin/env python3
"""Loads each HTML page in headless Chromium and fails on a JavaScript error or a chart that was not drawn.

usage: scripts/check_pages.py [--require-chromium] PAGE.html | FOLDER ...

A folder means its *.html files. For every page: Chromium runs its scripts (virtual time budget), then
  - a console line with "Uncaught" (an exception no code caught) or a console.error is a failure;
  - every chart the runner wrote (a div[data-tf-run-plotly-chart]) must hold a Plotly plot (.js-plotly-plot)
    with an <svg class="main-svg">, and so must every .js-plotly-plot on the page: otherwise the plot is empty.
Without Chromium the check is skipped with a note (exit 0), unless --require-chromium is given (exit 3).
Exit codes: 0 every page fine (or skipped), 1 a page failed, 2 bad arguments, 3 Chromium required but absent.
"""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfchromium  # noqa: E402

CHART_MARKER = "data-tf-run-plotly-chart"


def check_dom(dom_html, console):
    """The problems of one loaded page (empty list: fine) and the number of charts drawn."""
    problems = []
    for line in console:
        if "Uncaught" in line or ":ERROR:CONSOLE" in line:
            problems.append("JavaScript error: " + line.split("] ", 1)[-1].strip())
    root = tfchromium.parse(dom_html)
    nodes = list(root.walk())
    if not any(n.tag == "body" for n in nodes):
        problems.append("Chromium returned no DOM (page did not load)")
        return problems, 0

    def drawn(plot):
        return any(n.tag == "svg" and "main-svg" in n.classes() for n in plot.walk())

    containers = [n for n in nodes if CHART_MARKER in n.attrs]
    drawn_count = 0
    for i, c in enumerate(containers, 1):
        plots = [n for n in c.walk() if "js-plotly-plot" in n.classes()]
        if not plots:
            problems.append(f"chart {i} of {len(containers)}: Plotly never drew it (no .js-plotly-plot in its div)")
        elif not all(drawn(p) for p in plots):
            problems.append(f"chart {i} of {len(containers)}: empty plot (no svg.main-svg)")
        else:
            drawn_count += 1
    for n in nodes:
        if "js-plotly-plot" in n.classes() and not drawn(n) and not any(CHART_MARKER in a.attrs for a in ancestors(n)):
            problems.append("a .js-plotly-plot outside the runner's charts is empty (no svg.main-svg)")
    return problems, drawn_count


def ancestors(n):
    while n.parent is not None:
        n = n.parent
        yield n


def pages(args):
    for a in args:
        if os.path.isdir(a):
            found = sorted(glob.glob(os.path.join(a, "*.html")))
            if not found:
                raise SystemExit(f"check_pages: error: no *.html in folder '{a}'")
            yield from found
        elif os.path.isfile(a):
            yield a
        else:
            raise SystemExit(f"check_pages: error: no such page or folder: '{a}'")


def main(argv):
    require = "--require-chromium" in argv
    args = [a for a in argv if a != "--require-chromium"]
    if not args or any(a.startswith("-") for a in args):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        files = list(pages(args))
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    chromium = tfchromium.find()
    if chromium is None:
        note = "check_pages: note: chromium not found (apt-get install chromium); page check skipped"
        print(note, file=sys.stderr)
        return 3 if require else 0
    failed = 0
    for f in files:
        rc, dom, console = tfchromium.dump_dom(chromium, f)
        problems, charts = check_dom(dom, console)
        if rc != 0:
            problems.insert(0, f"chromium exited with {rc}")
        name = os.path.basename(f)
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"     {p}")
        else:
            print(f"ok   {name}: {charts} chart(s) drawn, no JavaScript error")
    print(f"{len(files) - failed} of {len(files)} page(s) render correctly in {os.path.basename(chromium)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
