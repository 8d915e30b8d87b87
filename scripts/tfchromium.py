"""Headless Chromium (Debian's `chromium` package) for the page check and the README pictures.

Only the command line is used (--dump-dom, --screenshot): no driver, no network, a fresh profile per call.
"""
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
]


def find():
    """The Chromium binary ($CHROMIUM, else chromium / chromium-browser on PATH), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run(binary, url, extra, timeout=120):
    """Runs Chromium once on `url` with a throw-away profile; returns (returncode, stdout, stderr)."""
    profile = tempfile.mkdtemp(prefix="tf-chromium-")
    try:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *extra, url]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
        return p.returncode, p.stdout, p.stderr
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(binary, path, budget_ms=10000):
    """The page's DOM after its scripts ran (virtual time), and the console lines Chromium logged."""
    rc, out, err = run(binary, file_url(path), [
        "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", "--dump-dom"])
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    return rc, out, console


def file_url(path):
    return "file://" + os.path.abspath(path)


class Node:
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, attrs, [], parent

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TreeBuilder(HTMLParser):
    """A forgiving DOM tree from Chromium's serialised DOM (which is well formed)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v or "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent


def parse(html):
    b = _TreeBuilder()
    b.feed(html)
    b.close()
    return b.root
