"""Every `diffgrn` command the README and docs show still works: it parses, and the
run it describes builds with every flag used (issue 19: a doc changes with its flags).
Nothing is trained; commands that read files (`--config`, `--resume`, `--collect`,
`rerun`) are parsed only, and synopses with placeholders are left out. The studies'
commands (`python -m studies NAME …`) are parsed by their own parsers."""

import argparse
import importlib
import re
from pathlib import Path

import pytest

from diffgrn import cli

ROOT = Path(__file__).parents[1]
PLACEHOLDER = re.compile(r"[\[\]|…<>$]|\b(?:FILE|DIR|OUT|NEW|NAME|B|S|U|K|N)\b")
LOOP = {"$B": "open", "$T": "0.67"}  # docs/comparison.md's `for B in open pinned` loop


def documented(pattern=r"diffgrn (?:train|compare|explore|rerun)\b") -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text().replace("\\\n", " ")
        shell = dict(re.findall(r'^\s*(\w+)="(diffgrn [^"]*)"', text, re.M))  # C="diffgrn …"
        for line in text.splitlines():
            line = re.sub(r"^(\s*)\$(\w+)\b", lambda m: m[1] + shell.get(m[2], m[0]), line)
            for var, value in LOOP.items():
                line = line.replace(var, value)
            for m in re.finditer(pattern + r"[^`\n#&]*", line):
                command = m[0].replace('"', "").strip()
                if not PLACEHOLDER.search(command) and command != "diffgrn rerun":
                    found.append((path.name, command))
    return sorted(set(found))


COMMANDS = documented()
STUDIES = documented(r"python -m studies[. ]\w+")


def test_the_docs_show_commands_of_every_kind():
    kinds = {c.split()[1] for _, c in COMMANDS}
    assert {"train", "compare", "explore"} <= kinds and len(COMMANDS) > 30, COMMANDS


@pytest.mark.parametrize(("doc", "command"), COMMANDS)
def test_a_documented_command_parses_and_builds(doc, command):
    argv = command.split()[1:]
    parser, sub = cli._parser()
    if "-h" in argv:
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 0
        return
    args = parser.parse_args(argv)
    if args.config is not None or getattr(args, "resume", None) or getattr(args, "collect", 0):
        return  # they read files the docs' runs wrote
    cli.check_unused(args.command, args, sub.choices[args.command])  # builds the run


class _Parsed(Exception):
    pass


@pytest.mark.parametrize(("doc", "command"), STUDIES)
def test_a_documented_study_command_parses(doc, command, monkeypatch):
    """Parsed by the study's own parser, which then stops it; a trailing flag with no
    value (`--tasks` in a sentence) must be one of the study's options."""
    name, *argv = re.sub(r"^python -m studies[. ]", "", command).split()
    mention = argv.pop() if argv and argv[-1].startswith("--") else None
    parse = argparse.ArgumentParser.parse_args

    def stop(parser, args=None, namespace=None):
        parse(parser, args, namespace)
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(_Parsed) as parsed:
        importlib.import_module(f"studies.{name}").main(argv)
    if mention is not None:
        assert mention in parsed.value.args[0]._option_string_actions, mention
