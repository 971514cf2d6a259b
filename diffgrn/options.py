"""Command-line options shared by the `diffgrn` command and the studies of a checkout
(`python -m studies NAME`): the tissue and genes options and the tissue they name, and
the model options (dynamics, readout, utility, regulator) and the method options, with
the objects they name: the command line's string → object tables live here."""

import argparse
from pathlib import Path

import jax.random as jr

from .constraint import Clip, Reflect, SoftClip, Unconstrained
from .dynamics import Dynamics
from .estimators import AntitheticES, InverseVariance, LikelihoodRatio, Pathwise
from .methods import (
    CMAES,
    AbstractMethod,
    ClippedAdam,
    Evosax,
    Gradient,
    Hybrid,
    LinearSchedule,
    MuPlusLambdaES,
    RandomSearch,
)
from .noise import CounterNoise, GridNoise, VirtualTreeNoise
from .objective import Objective
from .pbt import GradientPopulation
from .population import AbstractPopulationMethod
from .readout import SoftReadout
from .regulator import AbstractRegulator, MLPRegulator, TanhRegulator, TranscriptionalRegulator
from .tissue import Chain, Lattice, Tissue
from .utility import Agreement, ExactHits, PatternInformation, TargetPattern

TISSUE_OPTIONS = ("tissue", "size", "boundary", "genes", "inputs")
"""The destinations `add_tissue_options` adds (and `--cells`, with `cells=True`)."""

SCORES = dict(agreement=Agreement, hit=ExactHits)  # --pattern-score


def add_tissue_options(group, cells: bool = True) -> None:
    """Add `--tissue`, `--size`, `--boundary`, (`--cells`,) `--genes` and `--inputs` to
    an argparse parser or argument group; `tissue_from_options` reads them back."""
    group.add_argument(
        "--tissue",
        choices=("chain", "square", "hex"),
        default="chain",
        help="chain (model.md), or a square or hexagonal (odd-r offset) lattice",
    )
    group.add_argument(
        "--size",
        default=None,
        help="cells: 7 for a chain, 20x20 (rows x cols) or 20 (20 x 20) for "
        "a lattice (None: --cells, 7, for a chain; 10x10 for a lattice)",
    )
    group.add_argument(
        "--boundary", choices=("open", "pinned", "periodic"), default="open", help="tissue boundary"
    )
    if cells:
        group.add_argument("--cells", type=int, default=7, help="chain length")
    group.add_argument("--genes", type=int, default=1, help="genes per cell")
    group.add_argument(
        "--inputs",
        choices=("neighbours", "both"),
        default="neighbours",
        help="mlp regulator: neighbours' mean only, or the cell's own state too",
    )


def tissue_from_options(args: argparse.Namespace) -> Tissue:
    """The tissue that parsed `--tissue`, `--size`, `--boundary` and `--cells` name
    (without `--cells`, a chain has 7 cells); a `ValueError` names a bad `--size`."""
    if args.tissue == "chain":
        if args.size is None:
            return Chain(getattr(args, "cells", 7), args.boundary)
        if not args.size.strip().isdigit():
            raise ValueError(f"--size for a chain is one number of cells; got {args.size!r}")
        return Chain(int(args.size), args.boundary)
    text = (args.size or "10x10").lower()
    try:
        dims = [int(v) for v in text.split("x")]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2:
        raise ValueError(
            f"--size for a lattice is ROWSxCOLS (e.g. 20x20) or one number; got {args.size!r}"
        )
    return Lattice(dims[0], dims[1], args.tissue, args.boundary)


# The model options of `diffgrn train`, `compare` and `explore`: their string → object
# tables, the flags, and the objective and regulator they name.
CONSTRAINTS = dict(clip=Clip, reflect=Reflect, softclip=SoftClip, none=Unconstrained)
NOISES = dict(counter=CounterNoise, grid=GridNoise, tree=VirtualTreeNoise)
REGULATORS = dict(mlp=MLPRegulator, tanh=TanhRegulator, transcriptional=TranscriptionalRegulator)
QUICK = dict(t_final=5.0, dt=0.02, replicates=32, iterations=25)
"""`--quick`: the same model on a shorter, coarser, smaller run (< 1 minute on 2 cores)."""

MODEL_FLAGS = {  # the fields each model flag sets (errors name the flag: `flag_for`)
    "--t-final": "Dynamics.t_final",
    "--dt": "Dynamics.dt",
    "--sigma": "Dynamics.sigma",
    "--replicates": "Objective.replicates",
    "--bandwidth": "Objective.bandwidth",
    "--temperature": "SoftReadout.temperature",
    "--fate-genes": "Objective.fate_genes",
    "--genes": "Objective.genes MLPRegulator.genes TranscriptionalRegulator.genes",
    "--max-stiffness": "Objective.max_stiffness",
    "--size": "Lattice.rows Lattice.cols",
    "--cells": "Chain.n_cells",
    "--target-pattern": "TargetPattern.pattern",
}


def add_model_options(group) -> None:
    """The tissue options and the dynamics, readout, utility and regulator options."""
    add_tissue_options(group)
    add = group.add_argument
    add("--fate-genes", default="0", help="readout genes, e.g. 0,1: K = 2^m fates per cell")
    add("--t-final", type=float, help="horizon T (None: 20, or 5 with --quick)")
    add("--dt", type=float, help="Euler step (None: 0.01, or 0.02 with --quick)")
    add("--sigma", default="0.1", help="noise σ, one number or one per gene (e.g. 0.1,0.05)")
    add("--constraint", choices=tuple(CONSTRAINTS), default="clip",
        help="state constraint after every step (clip: model.md)")  # fmt: skip
    add("--noise", choices=tuple(NOISES), default="counter",
        help="how the Brownian increments are drawn: counter (inside each step, memory flat "
        "in T), grid (stored; diffgrn <= 0.4's numbers), tree (VirtualBrownianTree)")  # fmt: skip
    add("--max-stiffness", type=float, help="guard against Euler artefacts: score regulators "
        "with dt·max|f'| above this as U = 0 (e.g. 1; None: no guard)")  # fmt: skip
    add("--replicates", type=int, help="replicates R (None: 100, or 32 with --quick)")
    add("--temperature", type=float, default=20.0, help="soft readout temperature τ")
    add("--bandwidth", type=float, default=0.5,
        help="KDE bandwidth h (model.md's first version: 0.1)")  # fmt: skip
    add("--target-pattern", help="optimise toward this pattern instead of U: 0/1 per cell, "
        "e.g. 1001001 (row-major on a lattice; one readout gene)")  # fmt: skip
    add("--pattern-score", choices=tuple(SCORES), default="agreement",
        help="with --target-pattern: mean per-cell agreement, or the fraction of replicates "
        "that hit the pattern exactly")  # fmt: skip
    add("--regulator", choices=tuple(REGULATORS), default="mlp",
        help="mlp: model.md's 1 -> 8 -> 8 -> 1 MLP for one gene; tanh: a*tanh(-b(s-c)) with "
        "3 parameters, from a=1, b=10, c=0.5 (one gene); transcriptional: "
        "sigmoid(W s + V s̄ + b) - k s")  # fmt: skip


def numbers(text: str, flag: str, kind: type = float) -> tuple:
    """`0.1,0.05` → (0.1, 0.05); a ValueError names `flag`."""
    try:
        return tuple(kind(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{flag} must be comma-separated {what}; got {text!r}") from None


def objective_from_options(args: argparse.Namespace) -> Objective:
    """The objective the model options name (`--quick` sets T, dt and R not given)."""
    pick = lambda value, name, full: value if value is not None else (
        QUICK[name] if args.quick else full
    )  # fmt: skip
    sigma = numbers(args.sigma, "--sigma")
    return Objective(
        tissue=tissue_from_options(args),
        dynamics=Dynamics(
            t_final=pick(args.t_final, "t_final", 20.0),
            dt=pick(args.dt, "dt", 0.01),
            sigma=sigma[0] if len(sigma) == 1 else sigma,
            constraint=CONSTRAINTS[args.constraint](),
            noise=NOISES[args.noise](),
        ),
        max_stiffness=args.max_stiffness,
        readout=SoftReadout(args.temperature),
        bandwidth=args.bandwidth,
        replicates=pick(args.replicates, "replicates", 100),
        genes=args.genes,
        fate_genes=numbers(args.fate_genes, "--fate-genes", int),
        utility=PatternInformation()
        if args.target_pattern is None
        else TargetPattern(args.target_pattern, SCORES[args.pattern_score]()),
    )


def regulator_from_options(args: argparse.Namespace, key=None) -> AbstractRegulator:
    """The starting regulator `--regulator`, `--genes` and `--inputs` name (its
    parameters drawn with `key` where its class takes one)."""
    key = jr.key(0) if key is None else key
    if args.regulator == "mlp":
        return MLPRegulator(key=key, genes=args.genes, inputs=args.inputs)
    if args.regulator == "transcriptional":
        return TranscriptionalRegulator(args.genes, key=key)
    if args.genes != 1:
        raise ValueError(f"--regulator tanh has one gene; got --genes {args.genes}")
    return TanhRegulator()


# The method options of `diffgrn train` and `compare`, and the method they name.
METHOD_NAMES = ("es", "cmaes", "adam", "openes", "hybrid", "pbt", "random", "evosax:NAME")
ESTIMATORS = ("pathwise", "likelihood-ratio", "antithetic-es", "inverse-variance")
# flag, type, default, help, the fields it sets (errors from those fields name the flag)
METHOD_OPTIONS = [
    ("--generations", int, None, "es, cmaes, random and evosax generations (None: 200, or 25 "
     "with --quick)", ""),
    ("--steps", int, None, "adam, openes and hybrid iterations (None: 200, or 25 with "
     "--quick)", ""),
    ("--population", int, 20, "es, cmaes, random and evosax population", "MuPlusLambdaES."
     "population CMAES.population RandomSearch.population Evosax.population"),
    ("--parents", int, 5, "es: parents μ", "MuPlusLambdaES.parents"),
    ("--mutation", float, 0.1, "es: mutation scale", "MuPlusLambdaES.mutation"),
    ("--cma-sigma", float, 0.3, "cmaes (and evosax's std_init) initial step size",
     "CMAES.sigma Evosax.sigma"),
    ("--lr", float, 3e-2, "adam, openes, hybrid: Adam learning rate",
     "ClippedAdam.learning_rate"),
    ("--clip", float, 1.0, "adam, openes, hybrid: global-norm clip", "ClippedAdam.clip"),
    ("--grad-replicates", int, 25, "replicates per pathwise gradient estimate (adam, hybrid)",
     "Pathwise.replicates"),
    ("--estimator", str, "pathwise", "adam, hybrid: gradient estimator (pathwise ∇U_soft; "
     "likelihood-ratio ∇U_hard, path-space score; antithetic-es ∇U_hard; inverse-variance: "
     "pathwise and antithetic-es combined per parameter, 2 draws each)", ""),
    ("--es-sigma", float, 0.05, "antithetic ES perturbation scale (openes; adam with "
     "antithetic-es or inverse-variance)", "AntitheticES.sigma"),
    ("--es-pairs", int, 16, "antithetic ES pairs per estimate (openes; adam with antithetic-es "
     "or inverse-variance)", "AntitheticES.pairs"),
    ("--backprop-steps", int, None, "adam, hybrid: backpropagate through the last K steps only "
     "(truncated BPTT; None: all steps)", "Pathwise.backprop_steps"),
    ("--bandwidth-to", float, None, "adam, hybrid: anneal h linearly from --bandwidth to this "
     "over the first 3/4 of the steps (None: constant)", ""),
    ("--temperature-to", float, None, "adam, hybrid: anneal τ likewise from --temperature "
     "(None: constant)", ""),
    ("--switch", int, 10, "hybrid: cmaes generations before Adam takes over", "Hybrid.switch"),
    ("--learners", int, 8, "pbt: Adam learners trained together", "GradientPopulation.learners"),
    ("--spread", float, 2.0, "pbt: std of the noise on the learners' starting parameters",
     "GradientPopulation.spread"),
]  # fmt: skip


def add_method_options(group) -> None:
    """The method options (`METHOD_OPTIONS`) of `diffgrn train` and `compare`."""
    for flag, kind, default, text, _ in METHOD_OPTIONS:
        extra = dict(choices=ESTIMATORS) if flag == "--estimator" else {}
        group.add_argument(flag, type=kind, default=default, help=text, **extra)


def iterations_from_options(method, args) -> int:
    """`--generations` for a population method, `--steps` for the others (`--quick`: 25)."""
    given = args.generations if isinstance(method, AbstractPopulationMethod) else args.steps
    return given if given is not None else (QUICK["iterations"] if args.quick else 200)


def method_from_options(name: str, args: argparse.Namespace) -> AbstractMethod:
    """The method a name (`METHOD_NAMES`) and the method options describe."""
    if name in ("es", "cmaes", "random") or name.startswith("evosax:"):
        return dict(
            es=lambda: MuPlusLambdaES(args.population, args.parents, args.mutation),
            cmaes=lambda: CMAES(args.population, args.cma_sigma),
            random=lambda: RandomSearch(args.population),
        ).get(name, lambda: Evosax(name[7:], population=args.population, sigma=args.cma_sigma))()
    optimiser = ClippedAdam(args.lr, args.clip)
    antithetic = lambda: AntitheticES(args.es_sigma, args.es_pairs)
    if name == "openes":
        return Gradient(optimiser, antithetic(), name="openes")
    if name not in ("adam", "hybrid", "pbt"):
        raise ValueError(f"unknown method {name!r}; expected {', '.join(METHOD_NAMES)}")
    steps = (args.steps or (QUICK["iterations"] if args.quick else 200)) - (
        args.switch if name == "hybrid" else 0
    )
    anneal = lambda a, b: None if b is None else LinearSchedule(a, b, max(1, 3 * steps // 4))
    pathwise = lambda: Pathwise(args.grad_replicates, args.backprop_steps)
    estimator = {
        "pathwise": pathwise,
        "likelihood-ratio": LikelihoodRatio,
        "antithetic-es": antithetic,
        "inverse-variance": lambda: InverseVariance(pathwise(), antithetic(), batches=2),
    }[args.estimator]()
    for flag in ("--bandwidth-to", "--temperature-to"):
        end = getattr(args, flag[2:].replace("-", "_"))
        if end is not None and not end > 0:
            raise ValueError(f"{flag} must be > 0; got {end}")
    adam = Gradient(
        optimiser,
        estimator,
        temperature=anneal(args.temperature, args.temperature_to),
        bandwidth=anneal(args.bandwidth, args.bandwidth_to),
    )
    if name == "hybrid":
        return Hybrid(CMAES(args.population, args.cma_sigma), adam, args.switch)
    if name == "pbt":
        return GradientPopulation(adam, learners=args.learners, spread=args.spread)
    return adam


# The options of each command besides the model and method options.
# fmt: off
COMMAND_OPTIONS = {  # flag, argparse keywords, help
    "explore": [
        ("--method", dict(default="imgep,random"), "imgep, random, or both comma-separated"),
        ("--quick", dict(action="store_true"), "T=5, dt=0.02, R=32 and --budget 200 "
         "simulations per method: a smoke run"),
        ("--budget", dict(type=int), "simulations per method (None: 2000, 200 --quick)"),
        ("--descriptors", dict(default="fraction,boundaries,dominant"), "comma-separated: "
         "fraction (fate-1 fraction), boundaries (per cell), like (like-fated neighbour "
         "pairs), srep (S_rep), dominant (dominant pattern's frequency)"),
        ("--batch", dict(type=int, default=50), "regulators simulated per round"),
        ("--bins", dict(type=int, default=20), "bins per descriptor for coverage"),
        ("--scale", dict(type=float, default=1.0), "random draws' scale around θ₀"),
        ("--mutation", dict(type=float, default=0.2), "imgep: mutation, relative to --scale"),
    ],
    "train": [
        ("--quick", dict(action="store_true"), "T=5, dt=0.02, R=32, 25 iterations (generations "
         "or steps): a smoke run under a minute"),
        ("--method", dict(default="es"), f"one of {', '.join(METHOD_NAMES)} (NAME: any evosax "
         "strategy, e.g. evosax:Sep_CMA_ES; needs pip install 'diffgrn[evosax]')"),
        ("--config", dict(type=Path), "train the run a JSON file describes: a run folder's "
         "run.json or history.json (its 'run'); --out, --overwrite, --checkpoint-every and "
         "--no-progress still apply"),
        ("--checkpoint-every", dict(type=int), "save a checkpoint every K iterations (and on "
         "Ctrl-C) beside --out, in OUT.checkpoint/, to continue with --resume OUT"),
        ("--resume", dict(type=Path), "continue the interrupted run whose --out was this "
         "folder (the run is taken from its checkpoint)"),
    ],
    "compare": [
        ("--methods", dict(default="es,adam"), f"comma-separated: {', '.join(METHOD_NAMES)}"),
        ("--quick", dict(action="store_true"), "T=5, dt=0.02, R=32 and 25 iterations for every "
         "method: a smoke test, not a fair comparison (25 es/cmaes generations simulate about "
         "25x the replicate-steps of 25 adam steps; set --generations and --steps, and compare "
         "at equal replicate-steps, as compare.png's right panel does)"),
        ("--seeds", dict(default="1"), "seeds per method, a count or a list such as 0,3 (same "
         "starting regulator per seed)"),
        ("--target", dict(type=float), "utility target for time-to-target and success rate "
         "(None: no target)"),
        ("--reassess", dict(type=int, default=20), "re-assess each run's candidate at this "
         "many geometrically spaced iterations plus half as many evenly spaced ones, on "
         "--reassess-repeats fresh draws: the target counts as reached when the mean's "
         "lower 95%% bound crosses it (0: judge on single monitored draws)"),
        ("--reassess-repeats", dict(type=int, default=10), "fresh draws per re-assessment (>= 2)"),
        ("--merge", {}, "with --collect: add the runs of other compare folders of one method "
         "each under a label, LABEL=DIR,... (same hard objective; the soft readout and "
         "bandwidth may differ)"),
        ("--baseline", {}, "method the speed-ups are measured against (default: es if "
         "compared, else cmaes, else none)"),
        ("--collect", dict(action="store_true"), "train nothing: tabulate the METHOD-seedK "
         "runs already in --out (e.g. seeds run as separate processes)"),
    ],
}
COMMON_OPTIONS = [
    ("--seed", dict(type=int, default=0), "seed of the initial regulator and training"),
    ("--out", dict(type=Path), "output folder (None: runs/ and a name from the method, tissue "
     "and seed)"),
    ("--overwrite", dict(action="store_true"), "replace an existing, non-empty --out folder "
     "(whole: no stale files)"),
    ("--no-progress", dict(action="store_true"), "no progress bar or log lines"),
]
HELPS = dict(
    explore="explore which patterns the tissue makes: IMGEP against random search",
    train="train one method",
    compare="train several methods from the same starts over seeds on one objective",
)
# fmt: on


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except for flags and for None defaults explained in the help."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)
