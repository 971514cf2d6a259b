"""`python -m studies` lists the studies, one line each; `python -m studies NAME
[options]` runs one (`python -m studies NAME -h`: its options). Each writes its
results.json and figures into runs/study-NAME/ (or --out)."""

import ast
import importlib
import re
import sys
from pathlib import Path

from . import STUDIES

USAGE = "usage: python -m studies NAME [--quick] [--out DIR] [--seed S]  (NAME -h: its options)"


def summary(name: str) -> str:
    """First sentence of a study module's docstring, read without importing it."""
    source = Path(__file__).with_name(f"{name}.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    text = re.split(r"(?<=[.?;])\s", text)[0]
    return text if len(text) <= 90 else text[:89].rsplit(" ", 1)[0] + " …"


def main(argv=None) -> int:
    """List the studies (no NAME, or -h), or run `NAME` with the remaining arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in STUDIES:
        importlib.import_module(f"{__package__}.{argv[0]}").main(argv[1:])
        return 0
    listing = not argv or argv[0] in ("-h", "--help")
    width = max(map(len, STUDIES))
    lines = [USAGE, "", "studies:"] + [f"  {n:<{width}}  {summary(n)}" for n in STUDIES]
    if not listing:
        lines.insert(0, f"python -m studies: unknown study {argv[0]!r}")
    print("\n".join(lines), file=sys.stdout if listing else sys.stderr)
    return 0 if listing else 2


if __name__ == "__main__":
    sys.exit(main())
