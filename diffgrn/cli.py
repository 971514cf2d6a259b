"""The `diffgrn` command: `diffgrn train …`, `compare …`, `explore …`, `rerun …`. A thin
layer: the flags name fields of a run description (`diffgrn.Run`, `CompareRun`,
`ExploreRun`: `diffgrn.options` derives them from the objects), the objects check their
own values (errors are reworded to name the flag), and the descriptions train, explore
and write their folders."""

import argparse
import functools
import os
import re
import sys
import warnings
from pathlib import Path

import jax

from ._interrupt import keep_swallowed
from ._memory import LIMIT_VARIABLE
from ._runs import Unfinished, recorded, replay, report
from ._version import __version__
from .assessment import ReproducibilityBoundWarning
from .estimators import AbstractEstimator
from .options import (
    COMMANDS,
    FIELDS,
    METHODS,
    MODEL,
    NAMED,
    RELAXATION,
    HelpFormatter,
    add,
    common,
    describe,
    quick,
    value,
)
from .run import CompareRun, ExploreRun, Run, interrupted, load_run, tissue_label

DESCRIPTION = """\
Differentiable simulation of gene-regulatory fate patterning in JAX.

commands (each writes into --out, default runs/...):
  train    train one method; writes best/ and final/ (regulator + config),
           history.json, run.json, training_curve.png, regulator.png, patterns.png,
           kymograph.png (and fate_map.png on a lattice)
             diffgrn train --method cmaes --boundary pinned --quick
             diffgrn train --config runs/cmaes-pinned-seed0/run.json --out again
  compare  train several methods from the same starts over seeds; writes one
           run folder per method and seed, compare.md, compare.json, compare.png
             diffgrn compare --methods es,adam,random --seeds 3 --target 0.6
  explore  which patterns can the tissue make? curiosity-driven search
           (imgep) against random search at equal simulations; writes one
           library per method (with its descriptors.png, gallery.png), coverage.png
             diffgrn explore --budget 2000 --method imgep,random
  rerun    rerun a folder from its run description into a new --out
"""
HELPS = dict(
    train="train one method",
    compare="train several methods from the same starts over seeds on one objective",
    explore="explore which patterns the tissue makes: IMGEP against random search",
)
QUICK_COMPARE_NOTE = (
    f"note: --quick runs a smaller model ({quick('compare')}: utilities not comparable with "
    "full-size ones) and gives every method the same iterations, not equal cost: a generation of "
    "es/cmaes/random simulates about 25x the replicate-steps of an adam step, so this is a "
    "smoke test, not a comparison (compare.png's right panel shows the cost; see README)"
)
STUDY_MOVED = (
    "diffgrn: the studies are not installed with the package; from a checkout of diffgrn, "
    "run `python -m studies NAME [--quick]` (`python -m studies` lists them)"
)
UNDESCRIBED = {"quick", "config", "resume", "merge", "collect", "overwrite", "no_progress"}


def flag_errors(message: str, argv=()) -> str:
    """`ClippedAdam.learning_rate must be …` → `--lr must be … (ClippedAdam.learning_rate)`
    (each field a flag sets: of its flags, the one typed)."""
    found, flags = dict.fromkeys(re.findall(r"\b[A-Za-z_]+\.[a-z_]+\b", message)), FIELDS | NAMED
    named = [f for f in found if f in flags]
    for field in named:
        typed = [f for f in flags[field] if any(a.split("=")[0] == f for a in argv)]
        message = message.replace(field, (typed or flags[field])[0])
    return message + (f" ({', '.join(named)})" if named else "")


def given(args, parser) -> dict:
    """The options that differ from their defaults: {destination: its default}."""
    out = {}
    for a in parser._actions:
        default = a.type(a.default) if isinstance(a.default, str) and a.type else a.default
        if a.default is not argparse.SUPPRESS and getattr(args, a.dest, None) != default:
            out[a.dest] = default
    return out


def _types(config) -> set:
    """The class names in a config tree."""
    if isinstance(config, dict):
        return {config.get("type")} | set().union(*map(_types, config.values()))
    return set().union(*map(_types, config)) if isinstance(config, list) else set()


def check_unused(command: str, args, parser) -> None:
    """An option no chosen object uses is an error: it changes nothing in the run
    description (set back to its default, the description is the same), sets only the
    soft relaxation (`RELAXATION`) where no estimator is `relaxed`; `--cells` with
    `--size` (both set a chain's length) is refused first, before anything is built.
    A flag that sets a field of a class the run holds is used."""
    if args.size is not None and "cells" in given(args, parser):  # before any building
        raise ValueError("--cells and --size both set the chain's length: drop --cells")
    run = describe(command, args)
    described = run.config()
    present, unused = _types(described), []
    estimators = jax.tree_util.tree_leaves(run, is_leaf=lambda x: isinstance(x, AbstractEstimator))
    relaxed = any(e.relaxed for e in estimators if isinstance(e, AbstractEstimator))
    for dest, default in given(args, parser).items():
        flag = "--" + dest.replace("_", "-")
        fields = {f for f, flags in FIELDS.items() if flag in flags}
        reset = argparse.Namespace(**{**vars(args), dest: default})
        if dest in UNDESCRIBED or value(args, dest) == value(reset, dest):
            continue  # not described, or as good as not given (--quick's own value)
        if fields and fields <= RELAXATION and not relaxed:
            unused.append(flag)
            continue
        if any("." in f and f.partition(".")[0] in present for f in fields):
            continue
        try:
            again = describe(command, reset)
        except ValueError:  # the flag matters: without it, the objects do not even build
            continue
        if again.config() == described:
            unused.append(flag)
    if unused:
        unused = sorted(set(unused))
        what = args.method if command != "compare" else args.methods
        one = len(unused) == 1
        raise ValueError(f"{', '.join(sorted(unused))} {'does' if one else 'do'} not apply to "
                         f"this run ({what}, {args.tissue}, {args.regulator}): drop "
                         f"{'it' if one else 'them'}")  # fmt: skip


def cmd_run(args, parser, argv) -> int:
    """`train`, `compare` or `explore`: the run the flags, `--config FILE` or train's
    `--resume OUT` describe, executed."""
    command, resume = args.command, getattr(args, "resume", None)
    if command == "compare" and (args.collect or args.merge is not None):
        return collect(args, argv, parser)
    if resume is None and args.config is None:
        check_unused(command, args, parser)
        return execute(describe(command, args), argv, args)
    path = args.config or Path(f"{resume}.checkpoint") / "run.json"
    if resume is not None and not path.is_file():
        raise ValueError(f"--resume {resume}: no checkpoint ({path} is missing; was the "
                         "run started with --checkpoint-every?)")  # fmt: skip
    extra = [d for d in given(args, parser) if d not in UNDESCRIBED | {"out", "checkpoint_every"}]
    if extra:
        drop = ", ".join("--" + d.replace("_", "-") for d in extra)
        raise ValueError(f"--config/--resume take the whole run from its file: drop {drop}")
    run = load_run(path, "--config" if resume is None else "--resume")
    kind = dict(train=Run, compare=CompareRun, explore=ExploreRun)[command]
    if not isinstance(run, kind):
        what = f"{type(run).__name__}, not the {kind.__name__} that {command} runs"
        article = "an" if what[0] in "AEIOU" else "a"
        raise ValueError(f"{'--config' if resume is None else '--resume'} {path} describes "
                         f"{article} {what}")  # fmt: skip
    run = run.replace(out=str(args.out or resume or run.folder))
    if getattr(args, "checkpoint_every", None) is not None:
        run = run.replace(checkpoint_every=args.checkpoint_every)
    return execute(run, argv, args)


def execute(run, argv, args) -> int:
    """Execute a run description, print its summary; the exit status."""
    kw = dict(progress=not args.no_progress, overwrite=args.overwrite, command=argv)
    try:
        if not isinstance(run, Run):
            out = sys.stdout if isinstance(run, CompareRun) else sys.stderr  # results, progress
            done = run.execute(log=lambda line: print(line, file=out), **kw)
            return (compared if isinstance(done, tuple) else explored)(run, done, args)
        result, fresh = run.execute(resume=getattr(args, "resume", None) is not None, **kw)
    except Unfinished as e:
        print(f"diffgrn: {e}", file=sys.stderr)
        return 130 if e.interrupted else 1
    label = tissue_label(run.objective)
    print(report(run.method.name, label, run.seed, run.folder, run.objective, result, fresh))
    if result.error:
        print(f"error: {result.error} (best regulator saved in {run.folder / 'best'})",
              file=sys.stderr)  # fmt: skip
        return 130 if interrupted(result) else 1
    return 0


def compared(run, done, args) -> int:
    _, table, errors = done
    print(table)
    if getattr(args, "quick", False):
        print(QUICK_COMPARE_NOTE)
    return 1 if errors else 0


def explored(run, summary, args) -> int:
    from ._runs import describe as label

    line = ", ".join(f"{m} {n} bins" for m, n in summary["filled"].items())
    print(f"explore ({label(run.objective)}, {run.budget} simulations each): {line}; written "
          f"to {run.folder}")  # fmt: skip
    return 0


def collect(args, argv, parser) -> int:
    """`compare --collect [--merge LABEL=DIR,...]`: tabulate finished runs
    (`CompareRun.tabulate`)."""
    if not args.collect:
        raise ValueError("compare --merge needs --collect (it tabulates finished runs)")
    training = {o.flag[2:].replace("-", "_") for o in METHODS} | {"methods", "seeds", "reassess"}
    extra = sorted(d for d in given(args, parser) if d in training | {"reassess_repeats"})
    if extra:
        drop = ", ".join("--" + d.replace("_", "-") for d in extra)
        raise ValueError(f"compare --collect trains nothing (it tabulates the runs): drop {drop}")
    merge = [item.partition("=") for item in filter(None, (args.merge or "").split(","))]
    bad = [a + b + c for a, b, c in merge if not (a.strip() and b and c.strip())]
    if bad:
        raise ValueError(f"compare --merge takes LABEL=DIR,...; got {bad[0]!r}")
    labels = [a.strip() for a, _, _ in merge]
    if len(set(labels)) < len(labels):
        raise ValueError(f"compare --merge lists a label twice: {','.join(labels)}")
    run = describe("compare", argparse.Namespace(**{**vars(args), "baseline": None}))
    merged = {a.strip(): Path(c.strip()) for a, _, c in merge}
    log = functools.partial(print, file=sys.stderr)
    print(run.tabulate(merged, baseline=args.baseline, command=argv, log=log))
    return 0


def cmd_rerun(args, parser, argv) -> int:
    """Rerun a folder from its run description (or, for folders written before
    diffgrn 0.5, the command it records) into a new --out."""
    record, command = recorded(args.folder)  # command None: the record describes the run
    if command is None:
        return execute(load_run(record, "rerun:").replace(out=str(args.out)), argv, args)
    kept = replay(command, args.out, args.overwrite) + ["--no-progress"] * args.no_progress
    print("rerun: diffgrn " + " ".join(kept), file=sys.stderr)
    return main(kept)


def _parser():
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="diffgrn", description=DESCRIPTION, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"diffgrn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rerun = sub.add_parser("rerun", help="rerun a train, compare or explore folder from its "
                           "run description (same seed, options, history)")  # fmt: skip
    rerun.add_argument("folder", type=Path, help="a folder written by diffgrn")
    rerun.add_argument("--out", type=Path, required=True, help="the new output folder")
    rerun.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    rerun.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    for name, text in HELPS.items():
        p = sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
        add(p, COMMANDS[name])
        add(p.add_argument_group("model"), MODEL)
        add(p, common(name))
        if name != "explore":
            add(p.add_argument_group("methods"), METHODS)
    return parser, sub


def main(argv=None) -> int:
    return _main(sys.argv[1:] if argv is None else list(argv))


def console() -> None:
    """The `diffgrn` command. After an interrupt it leaves at once: every file is closed by
    then, and the interpreter's teardown of XLA under a step still in flight can abort
    (`free(): invalid pointer`) and turn exit status 130 into a crash."""
    keep_swallowed()  # a Ctrl-C landing in a garbage-collector callback is not lost
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["study"]:  # the studies run from a checkout, not the package
        print(STUDY_MOVED, file=sys.stderr)
        return 2
    parser, sub = _parser()
    args = parser.parse_args(argv)
    commands = dict(train=cmd_run, compare=cmd_run, explore=cmd_run, rerun=cmd_rerun)
    try:
        with warnings.catch_warnings():  # the summaries print this note themselves
            warnings.simplefilter("ignore", ReproducibilityBoundWarning)
            return commands[args.command](args, sub.choices[args.command], argv)
    except ValueError as e:
        p = sub.choices[args.command]  # its usage in short: the error is what matters
        p.exit(2, f"usage: {p.prog} [options] ({p.prog} -h lists them)\n"
                  f"{p.prog}: error: {flag_errors(str(e), argv)}\n")  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: nothing (more) written", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise  # a bug: its traceback helps the report
        print(f"diffgrn: out of device memory ({str(e).splitlines()[0][:300]}): diffgrn's size "
              f"estimate fell short here; set {LIMIT_VARIABLE} to a lower number of bytes (the "
              "batches are then planned in smaller chunks), or lower replicates, cells or "
              "t_final / dt; folders finished before are kept", file=sys.stderr)  # fmt: skip
        return 1
    except OSError as e:  # a full disk, a file-size limit, a folder made read-only meanwhile
        where = f" ({e.filename})" if e.filename else ""
        print(f"diffgrn: cannot write{where}: {e.strerror or e}; what this command was writing "
              "was removed, and folders written before (an --overwrite's old run) are as they "
              "were: free space or choose another --out", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    console()
