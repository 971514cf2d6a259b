"""The `diffgrn` command: `diffgrn train …`, `diffgrn compare …`, `diffgrn explore …`,
`diffgrn rerun …`."""

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import equinox as eqx
import jax.random as jr

from . import __version__, plotting
from ._runs import RunFolder, check_out, versions
from .config import from_config
from .constraint import Clip, Reflect, SoftClip, Unconstrained
from .dynamics import Dynamics
from .estimators import AntitheticES, InverseVariance, LikelihoodRatio, Pathwise
from .io import dumps, save
from .methods import (
    CMAES,
    Evosax,
    Gradient,
    Hybrid,
    LinearSchedule,
    MuPlusLambdaES,
    RandomSearch,
    default_optimiser,
    openes,
)
from .noise import CounterNoise, GridNoise, VirtualTreeNoise
from .objective import Objective
from .options import add_tissue_options, tissue_from_options
from .readout import HardReadout, SoftReadout
from .regulator import MLPRegulator, TanhRegulator, TranscriptionalRegulator
from .tissue import Chain
from .train import TrainResult, assess, train
from .utility import PatternInformation, TargetPattern

DESCRIPTION = """\
Differentiable simulation of gene-regulatory fate patterning in JAX.

commands (each writes into --out, default runs/...):
  train    train one method; writes best/ and final/ (regulator + config),
           history.json, training_curve.png, regulator.png, patterns.png,
           kymograph.png (and fate_map.png on a lattice)
             diffgrn train --method cmaes --boundary pinned --quick
  compare  train several methods from the same starts over seeds; writes one
           run folder per method and seed, compare.md, compare.json, compare.png
             diffgrn compare --methods es,adam,random --seeds 3 --target 0.6
  explore  which patterns can the tissue make? curiosity-driven search
           (imgep) against random search at equal simulations; writes one
           library per method, coverage.png, descriptors.png, gallery.png
             diffgrn explore --budget 2000 --method imgep,random
"""

STUDY_MOVED = (
    "diffgrn: the studies are not installed with the package; from a checkout of diffgrn, "
    "run `python -m studies NAME [--quick]` (`python -m studies` lists them)"
)

# --quick: the same model on a shorter, coarser, smaller run (< 1 minute on 2 cores).
QUICK = dict(t_final=5.0, dt=0.02, replicates=32, iterations=25)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except for flags and for None defaults explained in the help."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _add_model_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("model (defaults from model.md)")
    add_tissue_options(g)
    g.add_argument(
        "--fate-genes",
        default="0",
        help="readout genes, e.g. 0,1: K = 2^m fates per cell",
    )
    g.add_argument(
        "--t-final", type=float, default=None, help="horizon T (None: 20, or 5 with --quick)"
    )
    g.add_argument(
        "--dt", type=float, default=None, help="Euler step (None: 0.01, or 0.02 with --quick)"
    )
    g.add_argument(
        "--sigma", default="0.1", help="noise σ, one number or one per gene (e.g. 0.1,0.05)"
    )
    g.add_argument(
        "--constraint",
        choices=tuple(CONSTRAINTS),
        default="clip",
        help="state constraint after every step (clip: model.md)",
    )
    g.add_argument(
        "--noise",
        choices=tuple(NOISES),
        default="counter",
        help="how the Brownian increments are drawn: counter (inside each step, memory "
        "flat in T), grid (stored; diffgrn <= 0.4's numbers), tree (VirtualBrownianTree)",
    )
    g.add_argument(
        "--max-stiffness",
        type=float,
        default=None,
        help="guard against Euler artefacts: score regulators with dt·max|f'| above this "
        "as U = 0 (e.g. 1; None: no guard)",
    )
    g.add_argument(
        "--replicates", type=int, default=None, help="replicates R (None: 100, or 32 with --quick)"
    )
    g.add_argument("--temperature", type=float, default=20.0, help="soft readout temperature τ")
    g.add_argument(
        "--bandwidth",
        type=float,
        default=0.5,
        help="KDE bandwidth h (model.md's first version: 0.1)",
    )
    g.add_argument(
        "--target-pattern",
        default=None,
        help="optimise toward this pattern instead of U: 0/1 per cell, e.g. 1001001 "
        "(row-major on a lattice; one readout gene)",
    )
    g.add_argument(
        "--pattern-score",
        choices=("agreement", "hit"),
        default="agreement",
        help="with --target-pattern: mean per-cell agreement, or the fraction of "
        "replicates that hit the pattern exactly",
    )
    g.add_argument(
        "--regulator",
        choices=("mlp", "tanh", "transcriptional"),
        default="mlp",
        help="mlp: model.md's 1 -> 8 -> 8 -> 1 MLP for one gene; "
        "tanh: a*tanh(-b(s-c)) with 3 parameters, from a=1, b=10, c=0.5 "
        "(one gene); transcriptional: sigmoid(W s + V s̄ + b) - k s",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the initial regulator and training")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (None: runs/ and a name from the method, tissue and seed)",
    )
    if p.prog.endswith("train"):
        p.add_argument(
            "--checkpoint-every",
            type=int,
            default=None,
            help="save a checkpoint every K iterations (and on Ctrl-C) beside --out, in "
            "OUT.checkpoint/, to continue with --resume OUT",
        )
        p.add_argument(
            "--resume",
            type=Path,
            default=None,
            help="continue the interrupted run whose --out was this folder (its options "
            "are taken from its checkpoint)",
        )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing, non-empty --out folder (whole: no stale files)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="T=5, dt=0.02, R=32, 25 iterations: a smoke run under a minute",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")


def _regulator(args, key):
    if args.regulator == "mlp":
        return MLPRegulator(key=key, genes=args.genes, inputs=args.inputs)
    if args.regulator == "transcriptional":
        return TranscriptionalRegulator(args.genes, key=key)
    if args.genes != 1:
        raise ValueError(f"--regulator tanh has one gene; got --genes {args.genes}")
    return TanhRegulator()


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated integers; got {text!r}") from None


def _tissue_label(args, objective) -> str:
    t = objective.tissue
    if args.tissue == "chain":
        return args.boundary
    return f"{args.tissue}{t.rows}x{t.cols}-{args.boundary}"


CONSTRAINTS = dict(clip=Clip, reflect=Reflect, softclip=SoftClip, none=Unconstrained)
NOISES = dict(counter=CounterNoise, grid=GridNoise, tree=VirtualTreeNoise)


def _objective(args) -> Objective:
    q = args.quick
    t_final = args.t_final if args.t_final is not None else (QUICK["t_final"] if q else 20.0)
    dt = args.dt if args.dt is not None else (QUICK["dt"] if q else 0.01)
    reps = args.replicates if args.replicates is not None else (QUICK["replicates"] if q else 100)
    try:
        sigma = tuple(float(v) for v in str(args.sigma).split(","))
    except ValueError:
        raise ValueError(
            f"--sigma must be a number or comma-separated numbers; got {args.sigma!r}"
        ) from None
    return Objective(
        tissue=tissue_from_options(args),
        dynamics=Dynamics(
            t_final=t_final,
            dt=dt,
            sigma=sigma[0] if len(sigma) == 1 else sigma,
            constraint=CONSTRAINTS[args.constraint](),
            noise=NOISES[args.noise](),
        ),
        max_stiffness=args.max_stiffness,
        readout=SoftReadout(args.temperature),
        bandwidth=args.bandwidth,
        replicates=reps,
        genes=args.genes,
        fate_genes=_ints(args.fate_genes, "--fate-genes"),
        utility=PatternInformation()
        if args.target_pattern is None
        else TargetPattern(args.target_pattern, args.pattern_score),
    )


METHOD_NAMES = ("es", "cmaes", "adam", "openes", "hybrid", "random", "evosax:NAME")


def _method(name: str, args):
    if name == "es":
        return MuPlusLambdaES(
            population=args.population, parents=args.parents, mutation=args.mutation
        )
    if name == "cmaes":
        return CMAES(population=args.population, sigma=args.cma_sigma)
    if name == "random":
        return RandomSearch(population=args.population)
    if name.startswith("evosax:"):
        return Evosax(
            name.removeprefix("evosax:"), population=args.population, sigma=args.cma_sigma
        )
    if name == "openes":
        return openes(default_optimiser(args.lr, args.clip), args.es_sigma, args.es_pairs)
    steps = _iterations("adam", args) - (args.switch if name == "hybrid" else 0)

    for flag, end in (
        ("--bandwidth-to", args.bandwidth_to),
        ("--temperature-to", args.temperature_to),
    ):
        if end is not None and not end > 0:
            raise ValueError(f"{flag} must be > 0; got {end}")

    def anneal(start, end):  # linear over the first three quarters of the Adam steps
        return None if end is None else LinearSchedule(start, end, max(1, 3 * steps // 4))

    pathwise = Pathwise(replicates=args.grad_replicates, backprop_steps=args.backprop_steps)
    estimator = dict(
        pathwise=lambda: pathwise,
        likelihood_ratio=lambda: LikelihoodRatio(),
        antithetic_es=lambda: AntitheticES(args.es_sigma, args.es_pairs),
        inverse_variance=lambda: InverseVariance(
            pathwise, AntitheticES(args.es_sigma, args.es_pairs), batches=2
        ),
    )[args.estimator.replace("-", "_")]()
    adam = Gradient(
        default_optimiser(args.lr, args.clip),
        estimator,
        temperature=anneal(args.temperature, args.temperature_to),
        bandwidth=anneal(args.bandwidth, args.bandwidth_to),
    )
    if name == "hybrid":
        return Hybrid(
            CMAES(population=args.population, sigma=args.cma_sigma), adam, switch=args.switch
        )
    return adam


def _generational(name: str) -> bool:
    return name in ("es", "cmaes", "random") or name.startswith("evosax:")


def _check_method_name(name: str, flag: str):
    if name not in METHOD_NAMES[:-1] and not name.startswith("evosax:"):
        raise ValueError(f"{flag}: unknown method {name!r}; expected {', '.join(METHOD_NAMES)}")


def _iterations(name: str, args) -> int:
    given = args.generations if _generational(name) else args.steps
    if given is not None:
        return given
    return QUICK["iterations"] if args.quick else 200


def _describe(objective: Objective) -> str:
    t = objective.tissue
    if isinstance(t, Chain):
        return f"{t.n_cells}-cell {t.config()['boundary']} chain"
    cfg = t.config()
    if "rows" in cfg:
        return f"{cfg['rows']}x{cfg['cols']} {cfg.get('geometry', '')} {cfg.get('boundary', '')}"
    return f"{t.n_cells}-cell graph"


def _write_run(
    out: Path, objective: Objective, result: TrainResult, seed: int, fresh: dict | None = None
) -> dict:
    """Save regulators, history and figures; return the fresh-noise assessment
    (`fresh`, or a new one)."""
    out.mkdir(parents=True, exist_ok=True)
    save(out / "best", result.best_regulator, result.config, result.history)
    save(out / "final", result.final_regulator, result.config, result.history)
    if fresh is None:  # fresh noise: keys from a stream that training never uses
        fresh = assess(objective, result.best_regulator, key=jr.key(2**31 - 1 - seed))
    summary = dict(
        result=dict(  # the run's one reported number: fresh-noise hard U of the best regulator
            hard_utility=fresh["mean"],
            standard_error=fresh["std"] / math.sqrt(fresh["repeats"]),
            repeats=fresh["repeats"],
            replicates=fresh["replicates"],
        ),
        best_utility=result.best_utility,
        selection=result.selection,
        best_iteration=result.best_iteration,
        fresh_noise=fresh,
        compile_time=result.compile_time,
        error=result.error,
        config=result.config,
        history=result.history.to_dict(),
    )
    (out / "history.json").write_text(dumps(summary))
    name = result.config["method"].get("name") or from_config(result.config["method"]).name
    title = f"{name}, {_describe(objective)}, seed {seed}"
    parts = ("agreement", "exact hits") if isinstance(objective.utility, TargetPattern) else None
    plotting.save_figure(
        plotting.plot_run(result, fresh, title, parts=parts), out / "training_curve.png"
    )
    plotting.save_figure(
        plotting.plot_regulator(result.best_regulator),
        out / "regulator.png",
        f"best regulator: {name}, {_describe(objective)}, seed {seed}",
    )
    key = jr.key(10_000 + seed)
    if len(result.history):
        states = eqx.filter_jit(objective.simulate)(result.best_regulator, key)
        fates = objective.fates(states, HardReadout())
        u = objective.utility.hard(fates)
        plotting.save_figure(
            plotting.plot_patterns(fates),
            out / "patterns.png",
            f"{title}: fates on one fresh draw (U = {float(u.value):.3f} on this draw)",
        )
        if not isinstance(objective.tissue, Chain):
            fig = plotting.plot_tissue_fates(objective.tissue, fates, n_fates=objective.n_fates)
            fig.suptitle(f"fate maps on fresh noise (U = {float(u.value):.3f})", fontsize=10)
            fig.tight_layout()
            fig.savefig(out / "fate_map.png", dpi=110)
            plotting.plt.close(fig)
        every = max(1, objective.dynamics.n_steps // 200)
        traj = eqx.filter_jit(objective.simulate)(
            result.best_regulator, key, replicates=2, save_every=every
        )
        step = objective.dynamics.dt * max(1, objective.dynamics.n_steps // 200)
        gene = objective.fate_genes[0]
        plotting.save_figure(
            plotting.plot_kymograph(traj[0], step, gene=gene),
            out / "kymograph.png",
            f"one replicate, gene {gene}",
        )
    return fresh


def _checkpoint_folder(out: Path) -> Path:
    return out.parent / f"{out.name}.checkpoint"


def _resume_argv(folder: Path) -> list[str]:
    """The command of the interrupted run whose output folder is `folder`."""
    f = _checkpoint_folder(folder) / "command.json"
    if not f.is_file():
        raise ValueError(
            f"--resume {folder}: no checkpoint ({f} is missing; was the run started with "
            "--checkpoint-every?)"
        )
    return list(json.loads(f.read_text())["argv"])


def _record(args, argv) -> dict:
    """What reproduces a run from its folder: seed, command line, package versions."""
    return dict(seed=args.seed, command=["diffgrn", *argv], versions=versions())


def _interrupted(result: TrainResult) -> bool:
    return bool(result.error) and result.error.startswith("interrupted")


def cmd_explore(args, argv) -> int:
    from .discovery import explore, get_descriptors

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("imgep", "random")] or ([] if methods else [""])
    if bad:
        raise ValueError(f"explore --method must be imgep, random or both; got {args.method!r}")
    budget = args.budget if args.budget is not None else (200 if args.quick else 2000)
    for flag, value, least in (("--budget", budget, 1), ("--batch", args.batch, 1)):
        if value < least:
            raise ValueError(f"{flag} must be an integer >= {least}; got {value}")
    if args.bins < 1:
        raise ValueError(f"--bins must be an integer >= 1; got {args.bins}")
    for flag, value in (("--scale", args.scale), ("--mutation", args.mutation)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a finite number > 0; got {value}")
    descriptors = get_descriptors(args.descriptors)
    objective = _objective(args)
    out = args.out or Path("runs") / f"explore-{_tissue_label(args, objective)}-seed{args.seed}"
    k_init, k_explore = jr.split(jr.key(args.seed))
    regulator = _regulator(args, k_init)
    objective.check_regulator(regulator)
    libraries = {}
    with RunFolder(out, args.overwrite) as folder:
        for method in methods:
            lib = explore(
                objective,
                regulator,
                method,
                budget=budget,
                key=k_explore,  # the same first random round for every method
                descriptors=descriptors,
                batch=args.batch,
                scale=args.scale,
                mutation=args.mutation,
                bins=args.bins,
                progress=not args.no_progress,
            )
            lib.config["run"] = _record(args, argv)
            lib.save(folder.tmp / method)
            title = f"{method}, {_describe(objective)}, {budget} simulations"
            plotting.plot_descriptor_space(lib, title).savefig(
                folder.tmp / method / "descriptors.png", dpi=110
            )
            fig = plotting.plot_gallery(lib, objective.tissue, n_fates=objective.n_fates)
            fig.savefig(folder.tmp / method / "gallery.png", dpi=110)
            plotting.plt.close("all")
            libraries[method] = lib
        ax = plotting.plot_coverage(libraries)
        plotting.save_figure(
            ax,
            folder.tmp / "coverage.png",
            f"{_describe(objective)}: occupied bins of ({', '.join(d.name for d in descriptors)})",
        )
        summary = dict(
            budget=budget,
            bins_per_descriptor=args.bins,
            descriptors=[d.name for d in descriptors],
            filled={m: lib.coverage[-1][1] for m, lib in libraries.items()},
            coverage={m: lib.coverage for m, lib in libraries.items()},
            config=objective.config(),
            run=_record(args, argv),
        )
        (folder.tmp / "explore.json").write_text(dumps(summary))
        folder.commit()
    line = ", ".join(f"{m} {n} bins" for m, n in summary["filled"].items())
    print(f"explore ({_describe(objective)}, {budget} simulations each): {line}; written to {out}")
    return 0


def cmd_train(args, argv) -> int:
    _check_method_name(args.method, "--method")
    objective = _objective(args)
    method = _method(args.method, args)
    label = _tissue_label(args, objective)
    out = args.out or Path("runs") / f"{args.method.replace(':', '-')}-{label}-seed{args.seed}"
    k_init, k_train = jr.split(jr.key(args.seed))
    regulator = _regulator(args, k_init)
    objective.check_regulator(regulator)
    ckpt = _checkpoint_folder(out) if args.checkpoint_every or args.resume else None
    with RunFolder(out, args.overwrite or bool(args.resume)) as folder:  # checked, locked
        if ckpt is not None and not args.resume:
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "command.json").write_text(json.dumps(dict(argv=argv)))
        result = train(
            objective,
            regulator,
            method,
            key=k_train,
            iterations=_iterations(args.method, args),
            progress=not args.no_progress,
            checkpoint=ckpt,
            checkpoint_every=args.checkpoint_every,
            resume=bool(args.resume),
        )
        result.config["run"] = _record(args, argv)
        fresh = _write_run(folder.tmp, objective, result, args.seed)
        folder.commit()
    if ckpt is not None and not _interrupted(result):
        shutil.rmtree(ckpt, ignore_errors=True)  # the run is whole: no need to resume
    h = result.history
    sem = fresh["std"] / math.sqrt(fresh["repeats"])
    print(
        f"{args.method} ({label}, seed {args.seed}): hard U = {fresh['mean']:.4f} ± "
        f"{sem:.4f} (mean ± s.e. on fresh noise, {fresh['repeats']} × "
        f"{fresh['replicates']} replicates) for the best regulator (iteration "
        f"{result.best_iteration}); {len(h)} iterations, "
        f"{h.wall_time[-1] if len(h) else 0:.1f} s in steps, compile "
        f"{result.compile_time:.1f} s; written to {out}"
    )
    target = isinstance(objective.utility, TargetPattern)
    print(
        f"  toward {objective.config()['utility']['pattern']}: mean per-cell agreement "
        f"{fresh['s_pat']:.4f}, exact hits {fresh['s_rep']:.4f} of replicates "
        f"(U = the {objective.utility.score})"
        if target
        else f"  S_pat = {fresh['s_pat']:.4f}, S_rep = {fresh['s_rep']:.4f} bits per cell "
        f"(U = S_pat - S_rep <= log2 K = {math.log2(objective.n_fates):g})"
    )
    res = fresh.get("resolution") or {}
    if "mean_fine" in res:
        print(
            f"  resolution: U = {res['mean_dt']:.4f} at dt = {res['dt']:g} and "
            f"{res['mean_fine']:.4f} at dt/{res['refine']} on the same noise; dt·max|f'| "
            f"over visited states = {res['stiffness_visited']:.3g}"
            + ("  <- ARTEFACT of the time step" if res["artefact"] else " (resolved)")
        )
    bound = math.log2(objective.replicates) / objective.n_cells
    if bound < 0.2 and not target:
        print(
            f"  note: with R = {objective.replicates} replicates and N = "
            f"{objective.n_cells} cells, S_rep <= log2(R) / N = {bound:.3f} whatever the "
            "patterns, so U here mostly measures S_pat; raise --replicates (or look at "
            "fate_map.png) to judge reproducibility"
        )
    if result.error:
        print(f"error: {result.error} (best regulator saved in {out / 'best'})", file=sys.stderr)
        return 130 if _interrupted(result) else 1
    return 0


def _seeds(text: str):
    """'5' → 5 seeds (0…4); '0,3' → those seeds."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        return int(text)
    except ValueError:
        raise ValueError(
            f"compare --seeds must be a count or a comma-separated list of "
            f"seed indices; got {text!r}"
        ) from None


def cmd_compare(args, argv) -> int:
    import contextlib

    from .compare import Comparison, check_target, compare

    objective = _objective(args)
    out = args.out or Path("runs") / f"compare-{_tissue_label(args, objective)}"
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise ValueError(f"compare --methods is empty; expected some of {', '.join(METHOD_NAMES)}")
    for name in names:
        _check_method_name(name, "compare --methods")
    try:
        check_target(args.target, objective)
    except ValueError:
        raise ValueError(
            f"--target must be a number in (0, {objective.utility.upper(objective.n_fates):g}] "
            f"(the utility's largest value; log2 K bits per cell for U); got {args.target}"
        ) from None
    if args.reassess < 0:
        raise ValueError(f"compare --reassess must be >= 0 (0: off); got {args.reassess}")
    if args.reassess_repeats < 2:
        raise ValueError(f"compare --reassess-repeats must be >= 2; got {args.reassess_repeats}")
    if args.merge is not None and not args.collect:
        raise ValueError("compare --merge needs --collect (it tabulates finished runs)")
    if args.baseline is not None and not args.collect and args.baseline not in names:
        raise ValueError(
            f"compare --baseline {args.baseline!r} is not among --methods ({', '.join(names)})"
        )
    check_out(out, overwrite=True)  # a shared folder: run folders are checked one by one
    if args.collect:
        if not out.is_dir():
            raise ValueError(f"compare --collect: {out} is not a folder of runs")
        comparison = Comparison.collect(out, args.target)
        for item in filter(None, (args.merge or "").split(",")):
            label, sep, folder = item.partition("=")
            if not sep or not label.strip() or not folder.strip():
                raise ValueError(f"compare --merge takes LABEL=DIR,...; got {item!r}")
            other = Comparison.collect(Path(folder.strip()), args.target)
            if len(other.runs) != 1:
                raise ValueError(
                    f"compare --merge: {folder} holds {len(other.runs)} methods; give "
                    "folders of one method each"
                )
            comparison = comparison.merge(other, {next(iter(other.runs)): label.strip()})
        return _write_comparison(out, comparison, list(comparison.runs), objective, args)
    seeds = _seeds(args.seeds)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else seeds
    errors, interrupted = [], []
    with contextlib.ExitStack() as stack:
        folders = {  # every run folder checked and locked before anything is compiled
            (name, seed): stack.enter_context(RunFolder(out / f"{name}-seed{seed}", args.overwrite))
            for name in names
            for seed in seed_list
        }
        comparison = _run_compare(
            args, argv, objective, out, names, folders, errors, interrupted, compare
        )
    if comparison is None:
        return 130
    return _write_comparison(out, comparison, names, objective, args) or (1 if errors else 0)


def _run_compare(args, argv, objective, out, names, folders, errors, interrupted, compare):
    def on_run(name, seed, res, fresh):
        res.config["run"] = _record(argparse.Namespace(seed=seed), argv)
        folder = folders[(name, seed)]
        _write_run(folder.tmp, objective, res, seed, fresh)
        folder.commit()
        errors.extend([res.error] if res.error else [])
        if _interrupted(res):
            interrupted.append(name)
            raise KeyboardInterrupt
        print(
            f"{name} seed {seed}: fresh-noise hard U {fresh['mean']:.4f} ± "
            f"{fresh['std']:.4f}, {res.history.wall_time[-1] if len(res.history) else 0:.1f}"
            f" s in steps" + (f" [error: {res.error}]" if res.error else "")
        )

    try:
        return compare(
            objective,
            {n: _method(n, args) for n in names},
            key=jr.key(args.seed),
            seeds=_seeds(args.seeds),
            iterations={n: _iterations(n, args) for n in names},
            target=args.target,
            progress=not args.no_progress,
            make_regulator=lambda k: _regulator(args, k),
            on_run=on_run,
            reassess=(args.reassess or None) if args.target is not None else None,
            reassess_repeats=args.reassess_repeats,
        )
    except KeyboardInterrupt:
        print(
            f"compare interrupted: the finished runs are in {out}; tabulate them with --collect",
            file=sys.stderr,
        )
        return None


def _write_comparison(out, comparison, names, objective, args) -> int:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plotting.plot_comparison(comparison, "wall_time", axes[0])
    plotting.plot_comparison(comparison, "replicate_steps", axes[1])
    seeds = max(len(r) for r in comparison.runs.values())
    plotting.save_figure(
        axes[0],
        out / "compare.png",
        f"{' vs '.join(names) if len(names) <= 4 else f'{len(names)} methods'}, "
        f"{seeds} seed(s), same objective",
    )
    baseline = args.baseline or next((b for b in ("es", "cmaes") if b in comparison.runs), None)
    if baseline is not None and baseline not in comparison.runs:
        raise ValueError(
            f"compare --baseline {baseline!r} is not among the compared methods "
            f"({', '.join(comparison.runs)})"
        )
    table = comparison.to_markdown(baseline)
    (out / "compare.md").write_text(table + "\n")
    (out / "compare.json").write_text(
        dumps(
            dict(
                table=comparison.table(),
                fresh=comparison.fresh,
                target=args.target,
                speedups=comparison.speedups(baseline)
                if baseline and args.target is not None
                else None,
                config=comparison.objective or objective.config(),
                run=dict(command=["diffgrn", *args.argv], versions=versions()),
            )
        )
    )
    print(table)
    return 0


# Which methods each method option applies to (the CLI refuses options no chosen method uses).
METHOD_OPTIONS = dict(
    population={"es", "cmaes", "random", "evosax", "hybrid"},
    parents={"es"},
    mutation={"es"},
    cma_sigma={"cmaes", "evosax", "hybrid"},
    generations={"es", "cmaes", "random", "evosax"},
    steps={"adam", "openes", "hybrid"},
    lr={"adam", "openes", "hybrid"},
    clip={"adam", "openes", "hybrid"},
    grad_replicates={"adam", "hybrid"},
    estimator={"adam", "hybrid"},
    es_sigma={"adam", "hybrid", "openes"},
    es_pairs={"adam", "hybrid", "openes"},
    backprop_steps={"adam", "hybrid"},
    bandwidth_to={"adam", "hybrid"},
    temperature_to={"adam", "hybrid"},
    switch={"hybrid"},
)


def _check_options(args, parser: argparse.ArgumentParser):
    """Errors naming options that are out of range or that no chosen method uses."""
    names = [args.method] if args.command == "train" else args.methods.split(",")
    kinds = {n.strip().split(":")[0] for n in names if n.strip()}
    if not kinds:
        raise ValueError(f"compare --methods is empty; expected some of {', '.join(METHOD_NAMES)}")
    unused = [
        "--" + dest.replace("_", "-")
        for dest, users in METHOD_OPTIONS.items()
        if getattr(args, dest) != parser.get_default(dest) and not users & kinds
    ]
    if unused:
        raise ValueError(
            f"{', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to "
            f"{', '.join(sorted(kinds))}: drop {'it' if len(unused) == 1 else 'them'}"
        )
    for flag, value in (("--lr", args.lr), ("--clip", args.clip), ("--es-sigma", args.es_sigma)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} must be a finite number > 0; got {value}")
    if args.es_pairs < 1:
        raise ValueError(f"--es-pairs must be an integer >= 1; got {args.es_pairs}")


def cmd_rerun(args) -> int:
    """Replay the command recorded in a folder, writing into a new --out."""
    folder = args.folder
    record = None
    for name in ("history.json", "compare.json"):
        f = folder / name
        if f.is_file():
            record = json.loads(f.read_text())
            break
    if record is None:
        raise ValueError(f"rerun: {folder} holds no history.json or compare.json")
    run = (record.get("config") or {}).get("run") or record.get("run")
    if not run or "command" not in run:
        raise ValueError(f"rerun: {folder} has no recorded command (written before diffgrn 0.3?)")
    command = list(run["command"][1:])
    if command[:1] == ["compare"] and (folder / "history.json").is_file():
        raise ValueError(f"rerun: {folder} is one run of a compare; rerun its parent folder")
    kept, skip = [], False
    for a in command:  # drop the old --out and --overwrite
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out=") or a == "--overwrite":
            continue
        kept.append(a)
    kept += ["--out", str(args.out)] + (["--overwrite"] if args.overwrite else [])
    print("rerun: diffgrn " + " ".join(kept), file=sys.stderr)
    return main(kept)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["study"]:  # the studies run from a checkout, not the package
        print(STUDY_MOVED, file=sys.stderr)
        return 2
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
        description="Rerun the command recorded in a run folder (history.json or "
        "compare.json) into a new --out: the same seed and options give the same history.",
    )
    rerun.add_argument("folder", type=Path, help="a folder written by diffgrn train or compare")
    rerun.add_argument("--out", type=Path, required=True, help="the new output folder")
    rerun.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    ex = sub.add_parser(
        "explore",
        help="explore which patterns the tissue makes: IMGEP against random search",
        description="Curiosity-driven exploration (IMGEP) and random search of the "
        "regulator's parameters at equal simulations, in a space of pattern descriptors.",
        formatter_class=_HelpFormatter,
    )
    ex.add_argument(
        "--method", default="imgep,random", help="imgep, random, or both comma-separated"
    )
    ex.add_argument(
        "--budget", type=int, default=None, help="simulations per method (None: 2000, 200 --quick)"
    )
    ex.add_argument(
        "--descriptors",
        default="fraction,boundaries,dominant",
        help="comma-separated: fraction (fate-1 fraction), boundaries (per cell), like "
        "(like-fated neighbour pairs), srep (S_rep), dominant (dominant pattern's frequency)",
    )
    ex.add_argument("--batch", type=int, default=50, help="regulators simulated per round")
    ex.add_argument("--bins", type=int, default=20, help="bins per descriptor for coverage")
    ex.add_argument("--scale", type=float, default=1.0, help="random draws' scale around θ₀")
    ex.add_argument(
        "--mutation", type=float, default=0.2, help="imgep: mutation, relative to --scale"
    )
    _add_model_args(ex)
    for name, helptext in (
        ("train", "train one method"),
        ("compare", "train several methods from the same starts over seeds on one objective"),
    ):
        p = sub.add_parser(
            name,
            help=helptext,
            description=helptext,
            formatter_class=_HelpFormatter,
        )
        if name == "train":
            p.add_argument(
                "--method",
                default="es",
                help=f"one of {', '.join(METHOD_NAMES)} (NAME: any evosax strategy, "
                "e.g. evosax:Sep_CMA_ES; needs pip install 'diffgrn[evosax]')",
            )
        else:
            p.add_argument(
                "--methods",
                default="es,adam",
                help=f"comma-separated: {', '.join(METHOD_NAMES)}",
            )
            p.add_argument(
                "--seeds",
                default="1",
                help="seeds per method, a count or a list such as 0,3 (same "
                "starting regulator per seed)",
            )
            p.add_argument(
                "--target",
                type=float,
                default=None,
                help="utility target for time-to-target and success rate (None: no target)",
            )
            p.add_argument(
                "--reassess",
                type=int,
                default=20,
                help="re-assess each run's candidate at about this many iterations "
                "(geometric, plus evenly spaced) on --reassess-repeats fresh draws: "
                "the target counts as reached when the mean's lower 95%% bound "
                "crosses it (0: judge on single monitored draws)",
            )
            p.add_argument(
                "--reassess-repeats",
                type=int,
                default=10,
                help="fresh draws per re-assessment (>= 2)",
            )
            p.add_argument(
                "--merge",
                default=None,
                help="with --collect: add the runs of other compare folders of one method "
                "each under a label, LABEL=DIR,... (same hard objective; the soft readout "
                "and bandwidth may differ)",
            )
            p.add_argument(
                "--baseline",
                default=None,
                help="method the speed-ups are measured against (default: es if "
                "compared, else cmaes, else none)",
            )
            p.add_argument(
                "--collect",
                action="store_true",
                help="train nothing: tabulate the METHOD-seedK runs already "
                "in --out (e.g. seeds run as separate processes)",
            )
        _add_model_args(p)
        g = p.add_argument_group("methods")
        g.add_argument(
            "--generations",
            type=int,
            default=None,
            help="es, cmaes, random and evosax generations (None: 200, or 25 with --quick)",
        )
        g.add_argument(
            "--steps",
            type=int,
            default=None,
            help="adam, openes and hybrid iterations (None: 200, or 25 with --quick)",
        )
        g.add_argument(
            "--population", type=int, default=20, help="es, cmaes, random and evosax population"
        )
        g.add_argument("--parents", type=int, default=5, help="es: parents μ")
        g.add_argument("--mutation", type=float, default=0.1, help="es: mutation scale")
        g.add_argument(
            "--cma-sigma",
            type=float,
            default=0.3,
            help="cmaes (and evosax's std_init) initial step size",
        )
        g.add_argument(
            "--lr", type=float, default=3e-2, help="adam, openes, hybrid: Adam learning rate"
        )
        g.add_argument(
            "--clip", type=float, default=1.0, help="adam, openes, hybrid: global-norm clip"
        )
        g.add_argument(
            "--grad-replicates",
            type=int,
            default=25,
            help="replicates per pathwise gradient estimate (adam, hybrid)",
        )
        g.add_argument(
            "--estimator",
            default="pathwise",
            choices=["pathwise", "likelihood-ratio", "antithetic-es", "inverse-variance"],
            help="adam, hybrid: gradient estimator (pathwise ∇U_soft; likelihood-ratio "
            "∇U_hard, path-space score; antithetic-es ∇U_hard; inverse-variance: "
            "pathwise and antithetic-es combined per parameter, 2 draws each)",
        )
        g.add_argument(
            "--es-sigma",
            type=float,
            default=0.05,
            help="antithetic ES perturbation scale (openes; adam with antithetic-es or "
            "inverse-variance)",
        )
        g.add_argument(
            "--es-pairs",
            type=int,
            default=16,
            help="antithetic ES pairs per estimate (openes; adam with antithetic-es or "
            "inverse-variance)",
        )
        g.add_argument(
            "--backprop-steps",
            type=int,
            default=None,
            help="adam, hybrid: backpropagate through the last K steps only "
            "(truncated BPTT; None: all steps)",
        )
        g.add_argument(
            "--bandwidth-to",
            type=float,
            default=None,
            help="adam, hybrid: anneal h linearly from --bandwidth to this "
            "over the first 3/4 of the steps (None: constant)",
        )
        g.add_argument(
            "--temperature-to",
            type=float,
            default=None,
            help="adam, hybrid: anneal τ likewise from --temperature (None: constant)",
        )
        g.add_argument(
            "--switch",
            type=int,
            default=10,
            help="hybrid: cmaes generations before Adam takes over",
        )
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if args.command == "rerun":
            return cmd_rerun(args)
        if args.command == "explore":
            return cmd_explore(args, argv)
        if args.command == "train" and args.resume is not None:
            resumed = _resume_argv(args.resume)
            args = sub.choices["train"].parse_args(resumed[1:])
            args.command, args.argv, args.resume = "train", resumed, Path(args.out)
            argv = resumed
        if args.command == "train" and args.checkpoint_every is not None:
            if args.checkpoint_every < 1:
                raise ValueError(f"--checkpoint-every must be >= 1; got {args.checkpoint_every}")
        _check_options(args, sub.choices[args.command])
        return cmd_train(args, argv) if args.command == "train" else cmd_compare(args, argv)
    except ValueError as e:
        parser.error(str(e))
    except KeyboardInterrupt:
        print("interrupted: nothing (more) written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
