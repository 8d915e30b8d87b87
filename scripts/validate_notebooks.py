#!/usr/bin/env python3
"""Validates notebooks with nbformat's own validator (the JSON schema of nbformat 4.x).

usage: scripts/validate_notebooks.py [--require-nbformat] NOTEBOOK.ipynb | FOLDER ...

A folder means its *.ipynb files. Without the nbformat module the check is skipped with a note (exit 0),
unless --require-nbformat is given (exit 3). Exit 1 when a notebook is invalid, 2 on bad arguments.
Debian: apt-get install python3-nbformat (then run it with /usr/bin/python3).
"""
import glob
import os
import sys


def main(argv):
    require = "--require-nbformat" in argv
    args = [a for a in argv if a != "--require-nbformat"]
    if not args or any(a.startswith("-") for a in args):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    files = []
    for a in args:
        if os.path.isdir(a):
            files += sorted(glob.glob(os.path.join(a, "*.ipynb")))
        elif os.path.isfile(a):
            files.append(a)
        else:
            print(f"validate_notebooks: error: no such notebook or folder: '{a}'", file=sys.stderr)
            return 2
    try:
        import nbformat
    except ImportError:
        # Debian's python3-nbformat is for the system python; a pyenv/venv python3 first on PATH lacks it
        system = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system) \
                and not os.environ.get("TF_VALIDATE_REEXEC"):
            os.environ["TF_VALIDATE_REEXEC"] = "1"
            os.execv(system, [system, os.path.abspath(__file__), *argv])
        print(f"validate_notebooks: note: {sys.executable} has no nbformat module (apt-get install python3-nbformat); "
              "validation skipped", file=sys.stderr)
        return 3 if require else 0
    bad = 0
    for f in files:
        try:
            nbformat.validate(nbformat.read(f, as_version=4))
            print(f"ok   {os.path.basename(f)}")
        except Exception as e:  # ValidationError, JSON errors, NBFormatError: all mean "invalid"
            bad += 1
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"FAIL {f}: {type(e).__name__}: {first}")
    print(f"{len(files) - bad} of {len(files)} notebook(s) valid under nbformat {nbformat.__version__}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
