"""String-literal comparisons that select behaviour, counted in the package's source.

    python -m benchmarks.string_switches [--max PER_KLOC]

Parses every `.py` under `diffgrn/` with `ast` and counts `x == "lit"`, `x != "lit"`,
`"lit" == x`, `x in ("a", "b")` (a tuple, list or set of string literals only) and
`match` cases with a string pattern. F-strings, dict keys, docstrings and other uses
of strings are not comparisons and are not counted. Prints the count and lines per
file, the total, and the count per 1 000 lines, for the whole package and outside
the CLI layer (`diffgrn/cli.py` or `diffgrn/cli/`, and `diffgrn/options.py`).

It reports and exits 0; with `--max PER_KLOC` it exits 1 when the figure outside the
CLI layer is above PER_KLOC (issue 19's acceptance: 2).
"""

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "diffgrn"
CLI_LAYER = ("cli.py", "cli/", "options.py")  # relative to the package folder


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _str_collection(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Tuple | ast.List | ast.Set)
        and bool(node.elts)
        and all(_is_str(e) for e in node.elts)
    )


def _str_pattern(pattern: ast.pattern) -> bool:
    return any(isinstance(p, ast.MatchValue) and _is_str(p.value) for p in ast.walk(pattern))


def string_switches(source: str) -> list[int]:
    """Line numbers of the string-literal comparisons in `source`, one per comparison
    (a chained comparison counts each of its links; a `match` case counts once)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, ast.Eq | ast.NotEq) and (_is_str(left) or _is_str(right)):
                    lines.append(node.lineno)
                elif isinstance(op, ast.In | ast.NotIn) and _str_collection(right):
                    lines.append(node.lineno)
                left = right
        elif isinstance(node, ast.match_case) and _str_pattern(node.pattern):
            lines.append(node.pattern.lineno)
    return sorted(lines)


def in_cli_layer(relative: str) -> bool:
    """Whether a path relative to the package folder belongs to the CLI layer."""
    return any(relative == p or (p.endswith("/") and relative.startswith(p)) for p in CLI_LAYER)


def count(package: Path = PACKAGE) -> dict[str, tuple[list[int], int]]:
    """For every `.py` under `package` (path relative to it): the lines of its string
    switches and its number of lines."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        out[path.relative_to(package).as_posix()] = (
            string_switches(text),
            len(text.splitlines()),
        )
    return out


def per_kloc(files: dict[str, tuple[list[int], int]]) -> tuple[int, int, float]:
    """(comparisons, lines, comparisons per 1 000 lines) over `files`."""
    n = sum(len(hits) for hits, _ in files.values())
    lines = sum(lines for _, lines in files.values())
    return n, lines, 1000 * n / max(lines, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--package", type=Path, default=PACKAGE, help="the package folder")
    p.add_argument(
        "--max",
        type=float,
        default=None,
        metavar="PER_KLOC",
        help="exit 1 when the count per 1 000 lines outside the CLI layer is above this",
    )
    args = p.parse_args(argv)
    files = count(args.package)
    name = args.package.name
    width = max(len(name) + 1 + len(f) for f in files)
    print("string-literal comparisons that select behaviour")
    print(f"  {'file':<{width}}  count  lines  at lines")
    for f, (hits, lines) in files.items():
        cli = "  (CLI layer)" if in_cli_layer(f) else ""
        at = ", ".join(map(str, hits))
        print(f"  {name + '/' + f:<{width}}  {len(hits):5d}  {lines:5d}  {at}{cli}")
    outside = {f: v for f, v in files.items() if not in_cli_layer(f)}
    for label, group in (("whole package", files), ("outside the CLI layer", outside)):
        n, lines, rate = per_kloc(group)
        print(f"{label}: {n} in {lines} lines = {rate:.1f} per 1 000 lines")
    rate = per_kloc(outside)[2]
    if args.max is not None and rate > args.max:
        print(
            f"string switches: {rate:.1f} per 1 000 lines outside the CLI layer "
            f"> --max {args.max:g}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
