"""Every command the README, docs and notebooks show still works (issue 19: a doc
changes with its flags). A `diffgrn` command goes through the command's own routing
and checks up to the point where it would train, tabulate or read a file (the run
description built, unused flags refused); a study's command (`python -m studies NAME
…`) through its parser only (a study's own checks after parsing are not run).
Synopses with placeholders (`[…]`, `|`, `DIR`, …) are left out."""

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

import studies
from diffgrn import cli
from diffgrn.run import CompareRun

ROOT = Path(__file__).parents[1]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SOURCES += sorted((ROOT / "notebooks").glob("*.py"))
PLACEHOLDER = re.compile(r"[\[\]|…<>$]|\b(?:FILE|DIR|OUT|NEW|NAME|B|S|U|K|N)\b")
LOOPS = [{"$B": "open", "$T": "0.67", "$S": "0"}, {"$B": "pinned", "$T": "0.973", "$S": "4"}]
"""docs/comparison.md's shell loops (`for B in open pinned`, `for S in 0 1 2 3 4`)."""


def _text(path: Path) -> str:
    text = path.read_text()
    if path.suffix == ".py":  # a notebook: its markdown cells are comments
        text = re.sub(r"^# ?", "", text, flags=re.M)
    text = text.replace("\\\n", " ")
    # inline code that wraps onto the next line is one command (outside ``` blocks)
    parts = re.split(r"(```.*?```)", text, flags=re.S)
    inline = lambda t: re.sub(r"`[^`]*`", lambda m: " ".join(m[0].split()), t)
    return "".join(p if p.startswith("```") else inline(p) for p in parts)


def documented(start: str) -> list[tuple[str, str]]:
    found = set()
    for path in SOURCES:
        text = _text(path)
        shell = dict(re.findall(r'^\s*(\w+)="(diffgrn [^"]*)"', text, re.M))  # C="diffgrn …"
        for line in text.splitlines():
            if re.match(r'^\s*\w+="', line):
                continue  # the shell variable's definition, used below
            line = re.sub(r"^(\s*)\$(\w+)\b", lambda m: m[1] + shell.get(m[2], m[0]), line)
            for loop in LOOPS if "$" in line else [{}]:
                for var, value in loop.items():
                    line = line.replace(var, value)
                for m in re.finditer(start + r"[^`\n#&;]*", line):
                    if not PLACEHOLDER.search(m[0]) and m[0].strip() != "diffgrn rerun":
                        found.add((path.name, m[0].strip()))
    return sorted(found)


COMMANDS = documented(r"diffgrn (?:train|compare|explore|rerun)\b")
STUDY_COMMANDS = documented(r"python -m studies[. ]\w+")


class _Stopped(BaseException):
    """Where the command would start to compute or to read a run's files."""


def test_the_docs_show_commands_of_every_kind():
    kinds = {c.split()[1] for _, c in COMMANDS}
    assert {"train", "compare", "explore"} <= kinds and len(COMMANDS) > 30, COMMANDS
    assert any("--collect" in c for _, c in COMMANDS) and len(STUDY_COMMANDS) > 20


@pytest.mark.parametrize(("doc", "command"), COMMANDS)
def test_a_documented_command_builds_its_run(doc, command, monkeypatch):
    argv = shlex.split(command)[1:]
    parser, sub = cli._parser()
    mentioned = sub.choices[argv[0]]._option_string_actions.get(argv[-1])
    if argv[-1].startswith("-"):  # a flag named in a sentence (`--config`) takes no value there
        assert mentioned is not None, argv[-1]
        argv = argv[:-1] if mentioned.nargs != 0 else argv
    if "-h" in argv:
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 0
        return

    def stop(*args, **kwargs):
        raise _Stopped

    for where, name in [(cli, "execute"), (cli, "load_run"), (cli, "recorded")]:
        monkeypatch.setattr(where, name, stop)
    monkeypatch.setattr(CompareRun, "tabulate", stop)
    args = parser.parse_args(argv)
    run = cli.cmd_rerun if args.command == "rerun" else cli.cmd_run
    with pytest.raises(_Stopped):
        run(args, sub.choices[args.command], argv)


@pytest.mark.parametrize(("doc", "command"), STUDY_COMMANDS)
def test_a_documented_study_command_parses(doc, command, monkeypatch):
    """A trailing flag with no value (`--tasks` in a sentence) must be one of the
    study's options."""
    name, *argv = shlex.split(re.sub(r"^python -m studies[. ]", "", command))
    assert name in studies.STUDIES
    mention = argv.pop() if argv and argv[-1].startswith("--") else None
    parse = argparse.ArgumentParser.parse_args

    def stop(parser, args=None, namespace=None):
        parse(parser, args, namespace)
        raise _Stopped(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(_Stopped) as parsed:
        importlib.import_module(f"studies.{name}").main(argv)
    if mention is not None:
        assert mention in parsed.value.args[0]._option_string_actions, mention
