"""The `diffgrn` command: `diffgrn train …`, `diffgrn compare …`, `diffgrn explore …`,
`diffgrn rerun …`. A thin layer: flags name the fields of a `diffgrn.Run` (objective,
regulator, method, budget, seed, output folder), the objects check their own values
(errors are reworded to name the flag), and the run folders are written by the library
(`Run.execute`, `diffgrn._runs`)."""

import argparse
import contextlib
import json
import re
import sys
import warnings
from pathlib import Path

import jax.random as jr

from ._memory import LIMIT_VARIABLE
from ._runs import (
    RunFolder,
    Unfinished,
    check_out,
    record,
    replay,
    report,
    write_comparison,
    write_exploration,
)
from ._runs import write_run as write_run_folder
from ._version import __version__
from .assessment import ReproducibilityBoundWarning
from .options import (
    COMMAND_OPTIONS,
    COMMON_OPTIONS,
    HELPS,
    METHOD_NAMES,
    METHOD_OPTIONS,
    MODEL_FLAGS,
    HelpFormatter,
    add_method_options,
    add_model_options,
    iterations_from_options,
    method_from_options,
    numbers,
    objective_from_options,
    regulator_from_options,
)
from .run import Run, interrupted, load_run, tissue_label

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
           library per method, coverage.png, descriptors.png, gallery.png
             diffgrn explore --budget 2000 --method imgep,random
"""
QUICK_COMPARE_NOTE = (
    "note: --quick runs a smaller model (T = 5, dt = 0.02, R = 32: utilities not comparable "
    "with full-size ones) and gives every method 25 iterations, not equal cost: a generation of "
    "es/cmaes/random simulates about 25x the replicate-steps of an adam step, so this is a "
    "smoke test, not a comparison (compare.png's right panel shows the cost; see README)"
)
STUDY_MOVED = (
    "diffgrn: the studies are not installed with the package; from a checkout of diffgrn, "
    "run `python -m studies NAME [--quick]` (`python -m studies` lists them)"
)
FIELDS = {f: flag for flag, *_, fs in METHOD_OPTIONS for f in fs.split()}
FIELDS |= {f: flag for flag, fs in MODEL_FLAGS.items() for f in fs.split()}
FIELDS |= {f"explore.{k}": f"--{k}" for k in ("budget", "batch", "scale", "mutation", "bins")}


def flag_errors(message: str) -> str:
    """`ClippedAdam.learning_rate must be …` → `--lr must be … (ClippedAdam.learning_rate)`."""
    for field in re.findall(r"\b[A-Za-z_]+\.[a-z_]+\b", message):
        if field in FIELDS:
            return message.replace(field, FIELDS[field], 1) + f" ({field})"
    return message


def build(args, names):
    """(objective, regulator template, {name: (method, iterations)}) from the flags."""
    objective = objective_from_options(args)
    regulator = regulator_from_options(args)
    methods = {}
    for name in names:
        m = method_from_options(name, args)
        methods[name] = (m, iterations_from_options(m, args))
    return objective, regulator, methods


def check_unused(args, parser, names):
    """Options no chosen object uses are errors: a flag is unused when setting it back to
    its default changes none of the objects it builds (objective, regulator, methods)."""

    def described(a):
        objective, regulator, methods = build(a, names)
        return repr(
            [
                objective.config(),
                regulator.config(),
                *((m.config(), n) for m, n in methods.values()),
            ]
        )

    given, unused = described(args), []
    for dest in _given(args, parser):
        try:
            same = described(argparse.Namespace(**{**vars(args), dest: parser.get_default(dest)}))
        except ValueError:  # the flag matters: without it, the objects do not even build
            continue
        if same == given:
            unused.append("--" + dest.replace("_", "-"))
    if unused:
        one = len(unused) == 1
        raise ValueError(
            f"{', '.join(unused)} {'does' if one else 'do'} not apply to "
            f"{', '.join(names)}: drop {'it' if one else 'them'}"
        )


def _given(args, parser, groups=("model", "methods")) -> list[str]:
    """The destinations of the options in `groups` that differ from their defaults."""
    dests = [a.dest for g in parser._action_groups if g.title in groups for a in g._group_actions]
    return [d for d in dests if getattr(args, d) != parser.get_default(d)]


def cmd_train(args, parser, argv) -> int:
    if args.resume is not None or args.config is not None:
        if args.resume is not None:
            path = Path(f"{args.resume}.checkpoint") / "run.json"
            if not path.is_file():
                raise ValueError(
                    f"--resume {args.resume}: no checkpoint ({path} is missing; "
                    "was the run started with --checkpoint-every?)"
                )
        given = [
            f"--{d.replace('_', '-')}"
            for d in ["seed", "method", *_given(args, parser)]
            if getattr(args, d) != parser.get_default(d)
        ]
        if given:
            raise ValueError(
                f"--config/--resume take the whole run from its file: drop {', '.join(given)}"
            )
        flag = "--config" if args.resume is None else "--resume"
        run = load_run(args.config or path, flag)
        run = run.replace(out=str(args.out or args.resume or run.folder))
        if args.checkpoint_every is not None:
            run = run.replace(checkpoint_every=args.checkpoint_every)
    else:
        if args.method not in METHOD_NAMES[:-1] and not args.method.startswith("evosax:"):
            raise ValueError(
                f"--method: unknown method {args.method!r}; expected {', '.join(METHOD_NAMES)}"
            )
        objective, regulator, methods = build(args, [args.method])
        check_unused(args, parser, [args.method])
        method, n = methods[args.method]
        kw = dict(out=args.out, checkpoint_every=args.checkpoint_every)
        run = Run(objective, regulator, method, n, args.seed, **kw)
    return _execute(run, args.resume is not None, not args.no_progress, args.overwrite, argv)


def _execute(run: Run, resume: bool, progress: bool, overwrite: bool, argv) -> int:
    """Run, write its folder, print its summary; the exit status."""
    kw = dict(progress=progress, overwrite=overwrite, resume=resume, command=argv)
    try:
        result, fresh = run.execute(**kw)
    except Unfinished as e:
        print(f"diffgrn train: {e}", file=sys.stderr)
        return 130 if e.interrupted else 1
    print(report(run.method.name, tissue_label(run.objective), run.seed, run.folder,
                 run.objective, result, fresh))  # fmt: skip
    if result.error:
        saved = run.folder / "best"
        print(f"error: {result.error} (best regulator saved in {saved})", file=sys.stderr)
        return 130 if interrupted(result) else 1
    return 0


def cmd_compare(args, parser, argv) -> int:
    from .compare import check_target, collect_merged, compare

    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise ValueError(f"compare --methods is empty; expected some of {', '.join(METHOD_NAMES)}")
    _refuse_repeats("compare --methods", names, "method")
    objective, _, methods = build(args, names)
    check_unused(args, parser, names)
    out = args.out or Path("runs") / f"compare-{tissue_label(objective)}"
    try:
        check_target(args.target, objective)
    except ValueError:
        raise ValueError(
            f"--target must be a number in (0, {objective.utility.upper(objective.n_fates):g}] "
            f"(the utility's largest value; log2 K bits per cell for U); got {args.target}"
        ) from None
    for flag, value, least in (
        ("--reassess", args.reassess, 0),
        ("--reassess-repeats", args.reassess_repeats, 2),
    ):
        if value < least:
            raise ValueError(
                f"compare {flag} must be >= {least}{' (0: off)' * (least == 0)}; got {value}"
            )
    if args.merge is not None and not args.collect:
        raise ValueError("compare --merge needs --collect (it tabulates finished runs)")
    if args.baseline is not None and not args.collect and args.baseline not in names:
        raise ValueError(
            f"compare --baseline {args.baseline!r} is not among --methods ({', '.join(names)})"
        )
    check_out(out, overwrite=True)  # a shared folder: run folders are checked one by one
    if args.collect:
        merge = [item.partition("=") for item in filter(None, (args.merge or "").split(","))]
        bad = [a + b + c for a, b, c in merge if not (a.strip() and b and c.strip())]
        if bad:
            raise ValueError(f"compare --merge takes LABEL=DIR,...; got {bad[0]!r}")
        _refuse_repeats("compare --merge", [a.strip() for a, _, _ in merge], "label")
        merged = {a.strip(): Path(c.strip()) for a, _, c in merge}
        comparison = collect_merged(out, args.target, merged)
        for name, why in comparison.skipped.items():
            print(f"compare --collect: not tabulated: {name}: {why}", file=sys.stderr)
    else:
        seeds = list(numbers(args.seeds, "compare --seeds", int))
        seeds = seeds[0] if len(seeds) == 1 and "," not in args.seeds else seeds
        if not isinstance(seeds, int):
            _refuse_repeats("compare --seeds", seeds, "seed")
        errors = []
        with contextlib.ExitStack() as stack:
            folders = {  # every run folder checked and locked before anything is compiled
                (n, s): stack.enter_context(RunFolder(out / f"{n}-seed{s}", args.overwrite))
                for n in names
                for s in (range(seeds) if isinstance(seeds, int) else seeds)
            }

            def on_run(name, seed, res, fresh):
                res.config["run"] = record(seed, argv)
                folder = folders[(name, seed)]
                try:  # fresh None: compare could not assess it; the trained result is kept
                    write_run_folder(folder.tmp, objective, res, seed, name, fresh, assess=False)
                except Unfinished as e:
                    folder.commit()
                    if fresh is None:
                        print(f"{name} seed {seed}: trained, saved in {folder.target}; {e}",
                              file=sys.stderr)  # fmt: skip
                        return
                    raise KeyboardInterrupt from e  # interrupted drawing figures: run saved
                folder.commit()
                errors.extend([res.error] if res.error else [])
                if interrupted(res):
                    raise KeyboardInterrupt
                wall = res.history.wall_time[-1] if len(res.history) else 0
                u = f"{fresh['mean']:.4f} ± {fresh['std']:.4f}"
                error = f" [error: {res.error}]" if res.error else ""
                steps = f"{wall:.1f} s in method steps"
                print(f"{name} seed {seed}: fresh-noise hard U {u}, {steps}{error}")

            try:
                comparison = compare(
                    objective,
                    {n: m for n, (m, _) in methods.items()},
                    key=jr.key(args.seed),
                    seeds=seeds,
                    iterations={n: k for n, (_, k) in methods.items()},
                    target=args.target,
                    progress=not args.no_progress,
                    on_run=on_run,
                    make_regulator=lambda k: regulator_from_options(args, k),
                    reassess=(args.reassess or None) if args.target is not None else None,
                    reassess_repeats=args.reassess_repeats,
                )
            except KeyboardInterrupt:
                what = f"the finished runs are in {out}; tabulate them with --collect"
                print(f"compare interrupted: {what}", file=sys.stderr)
                return 130
    print(write_comparison(out, comparison, objective, args.target, args.baseline, argv))
    if args.quick and not args.collect:
        print(QUICK_COMPARE_NOTE)
    return 1 if not args.collect and errors else 0


def _refuse_repeats(flag: str, items, what: str) -> None:
    """A ValueError naming `flag` when a value is listed twice (two runs into one folder)."""
    repeated = [x for i, x in enumerate(items) if x in items[:i]]
    if repeated:
        raise ValueError(
            f"{flag} lists the {what} {repeated[0]!r} twice; list each once "
            f"(got {','.join(map(str, items))})"
        )


def cmd_explore(args, parser, argv) -> int:
    from ._runs import describe
    from .discovery import IMGEP, RandomExploration, explore, get_descriptors

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    if not methods or any(m not in ("imgep", "random") for m in methods):
        raise ValueError(f"explore --method must be imgep, random or both; got {args.method!r}")
    _refuse_repeats("explore --method", methods, "method")
    budget = args.budget if args.budget is not None else (200 if args.quick else 2000)
    descriptors = get_descriptors(args.descriptors)
    objective = objective_from_options(args)
    out = args.out or Path("runs") / f"explore-{tissue_label(objective)}-seed{args.seed}"
    k_init, k_explore = jr.split(jr.key(args.seed))
    regulator = regulator_from_options(args, k_init)
    objective.check_regulator(regulator)
    with RunFolder(out, args.overwrite) as folder:
        kw = {k: getattr(args, k) for k in ("batch", "scale", "bins")}
        kw.update(budget=budget, descriptors=descriptors, progress=not args.no_progress)
        strategy = dict(imgep=lambda: IMGEP(mutation=args.mutation), random=RandomExploration)
        libraries, names = {}, [d.name for d in descriptors]
        try:
            for m in methods:  # the same first random round for every method: one key
                libraries[m] = explore(objective, regulator, strategy[m](), key=k_explore, **kw)
                filled = libraries[m].coverage[-1][1]
                print(f"explore: {m} done ({budget} simulations, {filled} bins)", file=sys.stderr)
        except KeyboardInterrupt:
            stopped = methods[len(libraries)]
            if not libraries:
                print(f"explore interrupted during {stopped}: nothing finished, nothing written",
                      file=sys.stderr)  # fmt: skip
                return 130
            write_exploration(
                folder.tmp, libraries, objective, budget, args.bins, names, args.seed, argv,
                unfinished=methods[len(libraries):],
            )  # fmt: skip
            folder.commit()
            print(
                f"explore interrupted during {stopped}: kept the finished "
                f"{', '.join(libraries)} librar{'y' if len(libraries) == 1 else 'ies'} in {out} "
                f"(explore.json lists {', '.join(methods[len(libraries) :])} as unfinished)",
                file=sys.stderr,
            )
            return 130
        summary = write_exploration(
            folder.tmp, libraries, objective, budget, args.bins, names, args.seed, argv
        )
        folder.commit()
    line = ", ".join(f"{m} {n} bins" for m, n in summary["filled"].items())
    print(f"explore ({describe(objective)}, {budget} simulations each): {line}; written to {out}")
    return 0


def cmd_rerun(args, parser, argv) -> int:
    """Rerun a folder into a new --out: a train folder from its run description, a
    compare (or an older train) folder from its recorded command."""
    folder = args.folder
    found = [folder / n for n in ("history.json", "compare.json") if (folder / n).is_file()]
    if not found:
        raise ValueError(f"rerun: {folder} holds no history.json or compare.json")
    try:
        rec = json.loads(found[0].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"rerun: {found[0]} is not valid JSON (truncated?): {e}") from None
    if not isinstance(rec, dict):
        raise ValueError(f"rerun: {found[0]} is not a run record (a JSON object)")
    if isinstance(rec.get("run"), dict) and rec["run"].get("type") == "Run":
        run = load_run(found[0], "rerun").replace(out=str(args.out))
        return _execute(run, False, True, args.overwrite, argv)
    config = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    recorded = config.get("run") or rec.get("run") or {}
    command = recorded.get("command") if isinstance(recorded, dict) else None
    if not (isinstance(command, list) and all(isinstance(a, str) for a in command)):
        raise ValueError(f"rerun: {folder} has no recorded command (written before diffgrn 0.3?)")
    if command[1:2] == ["compare"] and found[0].name == "history.json":
        raise ValueError(f"rerun: {folder} is one run of a compare; rerun its parent folder")
    kept = replay(command, args.out, args.overwrite)
    print("rerun: diffgrn " + " ".join(kept), file=sys.stderr)
    return main(kept)


def _parser():
    parser = argparse.ArgumentParser(
        prog="diffgrn",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"diffgrn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rerun = sub.add_parser(
        "rerun",
        help="rerun a train or compare folder from its record (same seed, options, history)",
        description="Rerun a run folder (its run description, or the command compare.json "
        "records) into a new --out: the same run gives the same history.",
    )
    rerun.add_argument("folder", type=Path, help="a folder written by diffgrn train or compare")
    rerun.add_argument("--out", type=Path, required=True, help="the new output folder")
    rerun.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    for name, text in HELPS.items():
        p = sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
        for flag, kw, help_text in COMMAND_OPTIONS[name]:
            p.add_argument(flag, help=help_text, **kw)
        add_model_options(p.add_argument_group("model"))
        for flag, kw, help_text in COMMON_OPTIONS:
            p.add_argument(flag, help=help_text, **kw)
        if name != "explore":
            add_method_options(p.add_argument_group("methods"))
    return parser, sub


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["study"]:  # the studies run from a checkout, not the package
        print(STUDY_MOVED, file=sys.stderr)
        return 2
    parser, sub = _parser()
    args = parser.parse_args(argv)
    commands = dict(train=cmd_train, compare=cmd_compare, explore=cmd_explore, rerun=cmd_rerun)
    try:
        with warnings.catch_warnings():  # the summaries print this note themselves
            warnings.simplefilter("ignore", ReproducibilityBoundWarning)
            return commands[args.command](args, sub.choices[args.command], argv)
    except ValueError as e:
        parser.error(flag_errors(str(e)))
    except KeyboardInterrupt:
        print("interrupted: nothing (more) written", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise  # a bug: its traceback helps the report
        print(
            f"diffgrn: out of device memory ({str(e).splitlines()[0][:300]}): diffgrn's size "
            f"estimate fell short here; set {LIMIT_VARIABLE} to a lower number of bytes (the "
            "batches are then planned in smaller chunks), or lower replicates, cells or "
            "t_final / dt; folders finished before are kept",
            file=sys.stderr,
        )
        return 1
    except OSError as e:  # a full disk, a file-size limit, a folder made read-only meanwhile
        where = f" ({e.filename})" if e.filename else ""
        print(
            f"diffgrn: cannot write{where}: {e.strerror or e}; what this command was writing "
            "was removed, and folders written before (an --overwrite's old run) are as they "
            "were: free space or choose another --out",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
