"""The command line's options, derived from the objects they set. Each flag names the
fields it sets (`Class.field`); its default is the first field's constructor default
unless the command line says otherwise; the objects check the values, and their errors
name the flag (`FIELDS`). A choice among classes lists a base's concrete subclasses by
short name (`MLPRegulator` → `mlp`, `AntitheticES` → `antithetic-es`). Shared by the
`diffgrn` command and the studies of a checkout (`studies/common.py`)."""

import argparse
import inspect
import re
from pathlib import Path
from typing import NamedTuple

import jax.random as jr

from .config import find_class, known
from .constraint import AbstractConstraint
from .discovery import IMGEP, AbstractExploration
from .dynamics import Dynamics
from .estimators import AbstractEstimator, AntitheticES, InverseVariance, Pathwise
from .methods import (
    CMAES,
    ClippedAdam,
    Evosax,
    Gradient,
    Hybrid,
    LinearSchedule,
    MuPlusLambdaES,
    RandomSearch,
)
from .noise import AbstractNoise
from .objective import Objective
from .pbt import GradientPopulation
from .population import AbstractPopulationMethod
from .readout import SoftReadout
from .regulator import AbstractRegulator
from .run import CompareRun, ExploreRun, Run
from .tissue import Chain, Lattice, Tissue
from .utility import AbstractPatternScore, PatternInformation, TargetPattern

Q = dict(t_final=5.0, dt=0.02, replicates=32, iterations=25, budget=200)
"""`--quick`: the same model on a shorter, coarser, smaller run (< 1 minute on 2 cores)."""


def short(cls: type, base: type) -> str:
    """A class's name on the command line: kebab case, its base's last word dropped."""
    name = cls.__name__.removesuffix(re.findall(r"[A-Z][a-z]+$", base.__name__)[0])
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "-", name or cls.__name__).lower()


def classes(base: type, **extra) -> dict:
    """diffgrn's concrete subclasses of `base` that build from their defaults, by name."""
    found = {
        short(c, base): c
        for c in (find_class({"type": n}) for n in known())
        if issubclass(c, base) and not inspect.isabstract(c)
        if c.__module__.split(".")[0] == "diffgrn"
        if all(
            p.default is not p.empty or n == "key" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            for n, p in inspect.signature(c).parameters.items()
        )
    }
    return found | extra


def ints(text: str) -> tuple:
    return numbers(text, "", int)


def numbers(text: str, flag: str = "", kind: type = float) -> tuple:
    """`0.1,0.05` → (0.1, 0.05); a ValueError names `flag`."""
    try:
        return tuple(kind(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{flag} must be comma-separated {what}; got {text!r}") from None


class Flag(NamedTuple):
    flag: str
    fields: str  # the `Class.field`s it sets, space-separated
    help: str
    kw: dict


def flag(name: str, fields: str = "", help: str = "", **kw) -> Flag:
    return Flag(name, fields, help, kw)


CHOICES = dict(
    constraint=classes(AbstractConstraint),
    noise=classes(AbstractNoise),
    regulator=classes(AbstractRegulator),
    estimator=classes(AbstractEstimator, **{"inverse-variance": InverseVariance}),
    pattern_score=classes(AbstractPatternScore),
    method=classes(AbstractExploration),
)
M = "es, cmaes, adam, openes, hybrid, pbt, random, evosax:NAME (any evosax strategy)"
# fmt: off
MODEL = [
    flag("--tissue", "", "chain (model.md), or a square or hexagonal (odd-r offset) lattice",
         choices=("chain", "square", "hex"), default="chain"),
    flag("--size", "Chain.n_cells Lattice.rows Lattice.cols", "cells: N for a chain, ROWSxCOLS "
         "or N (N x N) for a lattice (None: --cells for a chain, 10x10 for a lattice)",
         default=None),
    flag("--boundary", "Chain.boundary Lattice.boundary", "tissue boundary",
         choices=("open", "pinned", "periodic")),
    flag("--cells", "Chain.n_cells", "chain length"),
    flag("--genes", "Objective.genes MLPRegulator.genes TranscriptionalRegulator.genes",
         "genes per cell"),
    flag("--inputs", "MLPRegulator.inputs", "mlp: the neighbours' mean only, or the cell's own "
         "state too", choices=("neighbours", "both")),
    flag("--fate-genes", "Objective.fate_genes", "readout genes, e.g. 0,1: K = 2^m fates",
         type=ints, default=(0,)),
    flag("--t-final", "Dynamics.t_final", "horizon T (None: 20, or 5 with --quick)", type=float,
         default=None),
    flag("--dt", "Dynamics.dt", "Euler step (None: 0.01, or 0.02 with --quick)", type=float,
         default=None),
    flag("--sigma", "Dynamics.sigma", "noise σ, one number or one per gene (e.g. 0.1,0.05)",
         type=numbers),
    flag("--constraint", "Dynamics.constraint", "state constraint after every step (clip: "
         "model.md)", default="clip"),
    flag("--noise", "Dynamics.noise", "how the Brownian increments are drawn: counter (inside "
         "each step, memory flat in T), grid (stored; diffgrn <= 0.4's numbers), virtual-tree, "
         "no (σ = 0)", default="counter"),
    flag("--max-stiffness", "Objective.max_stiffness", "score regulators with dt·max|f'| above "
         "this as U = 0, a guard against Euler artefacts (e.g. 1; None: no guard)", type=float),
    flag("--replicates", "Objective.replicates", "replicates R (None: 100, or 32 with --quick)",
         type=int, default=None),
    flag("--temperature", "SoftReadout.temperature", "soft readout temperature τ"),
    flag("--bandwidth", "Objective.bandwidth", "KDE bandwidth h (model.md's first: 0.1)"),
    flag("--target-pattern", "TargetPattern.pattern", "optimise toward this pattern, not U: "
         "0/1 per cell, e.g. 1001001 (row-major on a lattice; one readout gene)", default=None),
    flag("--pattern-score", "TargetPattern.score", "with --target-pattern: per-cell agreement, "
         "or the fraction of replicates that hit it exactly", default="agreement"),
    flag("--regulator", "", "mlp: model.md's 1 -> 8 -> 8 -> 1 MLP; tanh: a*tanh(-b(s-c)), "
         "3 parameters (one gene); transcriptional: sigmoid(W s + V s̄ + b) - k s", default="mlp"),
]
METHODS = [
    flag("--generations", "MuPlusLambdaES CMAES RandomSearch Evosax", "es, cmaes, random, "
         "evosax generations (None: 200; 25 --quick)", type=int),
    flag("--steps", "Gradient", "adam, openes, hybrid, pbt steps (None: 200; 25 with --quick)",
         type=int),
    flag("--population", "MuPlusLambdaES.population CMAES.population RandomSearch.population "
         "Evosax.population", "es, cmaes, random and evosax population"),
    flag("--parents", "MuPlusLambdaES.parents", "es: parents μ"),
    flag("--mutation", "MuPlusLambdaES.mutation", "es: mutation scale"),
    flag("--cma-sigma", "CMAES.sigma Evosax.sigma", "cmaes (and evosax) initial step size"),
    flag("--lr", "ClippedAdam.learning_rate", "adam, openes, hybrid, pbt: learning rate"),
    flag("--clip", "ClippedAdam.clip", "adam, openes, hybrid, pbt: global-norm clip"),
    flag("--grad-replicates", "Pathwise.replicates", "replicates per pathwise estimate",
         type=int, default=25),
    flag("--estimator", "Gradient.estimator", "adam, hybrid, pbt: pathwise ∇U_soft; "
         "likelihood-ratio ∇U_hard (path-space score); antithetic-es ∇U_hard; inverse-variance: "
         "pathwise and antithetic-es combined per parameter", default="pathwise"),
    flag("--es-sigma", "AntitheticES.sigma", "antithetic ES perturbation scale (openes; "
         "antithetic-es, inverse-variance)"),
    flag("--es-pairs", "AntitheticES.pairs", "antithetic ES pairs per estimate (likewise)"),
    flag("--backprop-steps", "Pathwise.backprop_steps", "backpropagate through the last K "
         "steps only (truncated BPTT; None: all)", type=int),
    flag("--bandwidth-to", "Gradient", "adam, hybrid, pbt: anneal h linearly from --bandwidth "
         "to this over the first 3/4 of the steps (None: constant)", type=float),
    flag("--temperature-to", "Gradient", "likewise τ from --temperature (None: constant)",
         type=float),
    flag("--switch", "Hybrid.switch", "hybrid: cmaes generations before Adam", default=10),
    flag("--learners", "GradientPopulation.learners", "pbt: Adam learners trained together"),
    flag("--spread", "GradientPopulation.spread", "pbt: std of the learners' starting noise"),
]
COMMANDS = dict(
    train=[
        flag("--method", "", f"one of {M}", default="es"),
        flag("--checkpoint-every", "Run.checkpoint_every", "checkpoint every K iterations (and "
             "on Ctrl-C) in OUT.checkpoint/, to continue with --resume OUT", type=int),
        flag("--resume", "", "continue the interrupted run whose --out was this", type=Path),
    ],
    compare=[
        flag("--methods", "", f"comma-separated: {M}", default="es,adam"),
        flag("--seeds", "CompareRun.seeds", "seeds per method: a count, or a list such as 0,3 "
             "(the same starting regulator per seed)", default="1"),
        flag("--target", "CompareRun.target", "utility target for time-to-target and success "
             "rate (None: no target)", type=float),
        flag("--reassess", "CompareRun.reassess", "re-assess each candidate at this many "
             "iterations on --reassess-repeats fresh draws: the target is reached when the "
             "mean's lower 95%% bound crosses it (0: judge single draws)", default=20),
        flag("--reassess-repeats", "CompareRun.reassess_repeats", "fresh draws per "
             "re-assessment (>= 2)"),
        flag("--merge", "", "with --collect: add other compare folders of one method each "
             "under a label, LABEL=DIR,..."),
        flag("--baseline", "CompareRun.baseline", "method the speed-ups are measured against "
             "(None: es if compared, else cmaes, else none)"),
        flag("--collect", "", "train nothing: tabulate the METHOD-seedK runs in --out",
             action="store_true"),
    ],
    explore=[
        flag("--method", "", "imgep, random, or both comma-separated", default="imgep,random"),
        flag("--budget", "ExploreRun.budget", "simulations per method (None: 2000; 200 with "
             "--quick)", type=int, default=None),
        flag("--descriptors", "ExploreRun.descriptors", "comma-separated: fraction, boundaries, "
             "like, srep, dominant", default="fraction,boundaries,dominant"),
        flag("--batch", "ExploreRun.batch", "regulators simulated per round"),
        flag("--bins", "ExploreRun.bins", "bins per descriptor for coverage"),
        flag("--scale", "ExploreRun.scale", "random draws' scale around θ₀"),
        flag("--mutation", "IMGEP.mutation", "imgep: mutation, relative to --scale"),
    ],
)
COMMON = [
    flag("--quick", "", "T=5, dt=0.02, R=32, 25 iterations (200 simulations for explore): a "
         "smoke run, not a comparison", action="store_true"),
    flag("--config", "", "run what a run.json, history.json, compare.json or explore.json "
         "describes (--out, --overwrite, --no-progress, train's --checkpoint-every apply)",
         type=Path),
    flag("--seed", "Run.seed CompareRun.seed ExploreRun.seed", "seed of the start and training"),
    flag("--out", "Run.out CompareRun.out ExploreRun.out", "output folder (None: runs/ and a "
         "name from the run)", type=Path),
    flag("--overwrite", "", "replace an existing --out folder (whole: no stale files)",
         action="store_true"),
    flag("--no-progress", "", "no progress bar or log lines", action="store_true"),
]
# fmt: on
OPTIONS = MODEL + METHODS + COMMON + sum(COMMANDS.values(), [])
FIELDS: dict = {}
"""`Class.field` → the flags that set it (errors name the flag); a bare `Class`: the
flag applies when the run holds one."""
for o in OPTIONS:
    for f in o.fields.split():
        FIELDS.setdefault(f, []).append(o.flag)


def _default(fields: str):
    cls, _, name = fields.split()[0].partition(".")
    if not name:  # a flag that applies to a class without setting one field (None: theirs)
        return None
    return inspect.signature(find_class({"type": cls})).parameters[name].default


def add(group, options) -> None:
    """Add `options` (`Flag`s) to an argparse parser or group: types and defaults from
    the fields they set, choices of classes from `CHOICES`."""
    for o in options:
        kw = dict(o.kw)
        if "default" not in kw and "action" not in kw and o.fields:
            kw["default"] = _default(o.fields)
        if "type" not in kw and isinstance(kw.get("default"), (int, float)):
            kw["type"] = type(kw["default"])
        elif kw.get("type") in (numbers, ints) and not isinstance(kw.get("default"), str):
            d = kw["default"]  # a string, so that argparse converts it as it does a flag
            kw["default"] = ",".join(map(str, d)) if isinstance(d, tuple) else str(d)
        dest = o.flag[2:].replace("-", "_")
        if dest in CHOICES and o.flag != "--method":
            kw["choices"] = tuple(CHOICES[dest])
        group.add_argument(o.flag, help=o.help, **kw)


def make(cls: type, args: argparse.Namespace, **fixed):
    """`cls` built from the flags that set its fields (those not None), and `fixed`."""
    names = inspect.signature(cls).parameters
    kw = {
        f: getattr(args, o.flag[2:].replace("-", "_"))
        for o in OPTIONS
        for c, _, f in (x.partition(".") for x in o.fields.split())
        if c == cls.__name__ and f in names and hasattr(args, o.flag[2:].replace("-", "_"))
    }
    return cls(**{**{k: v for k, v in kw.items() if v is not None}, **fixed})


def add_tissue_options(group, cells: bool = True) -> None:
    """`--tissue`, `--size`, `--boundary`, (`--cells`,) `--genes` and `--inputs`."""
    add(group, [o for o in MODEL[:6] if cells or o.flag != "--cells"])


TISSUE_OPTIONS = ("tissue", "size", "boundary", "genes", "inputs")


def tissue_from_options(args: argparse.Namespace) -> Tissue:
    """The tissue `--tissue`, `--size`, `--boundary` (and `--cells`) name."""
    size = args.size
    if args.tissue == "chain":
        if size is not None and not size.strip().isdigit():
            raise ValueError(f"--size for a chain is one number of cells; got {size!r}")
        return Chain(int(size) if size else getattr(args, "cells", 7), args.boundary)
    dims = re.fullmatch(r"\s*(\d+)\s*(?:x\s*(\d+)\s*)?", (size or "10x10").lower())
    if dims is None:
        raise ValueError(f"--size for a lattice is ROWSxCOLS (e.g. 20x20) or N; got {size!r}")
    rows = int(dims[1])
    return Lattice(rows, int(dims[2] or rows), args.tissue, args.boundary)


def objective_from_options(args: argparse.Namespace) -> Objective:
    """The objective the model options name (`--quick` sets T, dt and R not given)."""
    q = {
        k: Q[k] for k in ("t_final", "dt", "replicates") if args.quick and getattr(args, k) is None
    }
    sigma = tuple(args.sigma) if isinstance(args.sigma, tuple) else (args.sigma,)
    sigma = sigma[0] if len(sigma) == 1 else sigma
    score = CHOICES["pattern_score"][args.pattern_score]()
    dynamics = make(Dynamics, args, **{k: q[k] for k in ("t_final", "dt") if k in q},
                    sigma=sigma, constraint=CHOICES["constraint"][args.constraint](),
                    noise=CHOICES["noise"][args.noise]())  # fmt: skip
    utility = PatternInformation() if args.target_pattern is None else (
        TargetPattern(args.target_pattern, score))  # fmt: skip
    return make(Objective, args, tissue=tissue_from_options(args), dynamics=dynamics,
                readout=make(SoftReadout, args), utility=utility,
                **{k: q[k] for k in ("replicates",) if k in q})  # fmt: skip


def regulator_from_options(args: argparse.Namespace, key=None) -> AbstractRegulator:
    """The starting regulator `--regulator` names, drawn with `key` if its class takes one."""
    cls = CHOICES["regulator"][args.regulator]
    keyed = "key" in inspect.signature(cls).parameters
    return make(cls, args, **(dict(key=jr.key(0) if key is None else key) if keyed else {}))


def method_from_options(name: str, args: argparse.Namespace):
    """The method a name (`M`) and the method options describe."""
    steps = (args.steps or (Q["iterations"] if args.quick else 200)) - (
        args.switch if name == "hybrid" else 0
    )

    def anneal(flag_, start, end):  # None: constant
        if end is not None and not end > 0:
            raise ValueError(f"{flag_} must be > 0; got {end}")
        return None if end is None else LinearSchedule(start, end, max(1, 3 * steps // 4))

    def adam():
        cls = CHOICES["estimator"][args.estimator]
        parts = [make(Pathwise, args), make(AntitheticES, args)]
        estimator = cls(*parts, batches=2) if cls is InverseVariance else make(cls, args)
        t = anneal("--temperature-to", args.temperature, args.temperature_to)
        h = anneal("--bandwidth-to", args.bandwidth, args.bandwidth_to)
        return Gradient(make(ClippedAdam, args), estimator, temperature=t, bandwidth=h)

    recipes = dict(
        es=lambda: make(MuPlusLambdaES, args),
        cmaes=lambda: make(CMAES, args),
        random=lambda: make(RandomSearch, args),
        openes=lambda: Gradient(make(ClippedAdam, args), make(AntitheticES, args), name="openes"),
        adam=adam,
        hybrid=lambda: make(Hybrid, args, first=make(CMAES, args), second=adam()),
        pbt=lambda: make(GradientPopulation, args, gradient=adam()),
        evosax=lambda: make(Evosax, args, strategy=name[7:]),
    )
    if name.partition(":")[0] not in recipes or name == "evosax":
        raise ValueError(f"--method: unknown method {name!r}; expected one of {M}")
    return recipes[name.partition(":")[0]]()


def iterations_from_options(method, args) -> int:
    """`--generations` for a population method, `--steps` for the others (`--quick`: 25)."""
    given = args.generations if isinstance(method, AbstractPopulationMethod) else args.steps
    return given if given is not None else (Q["iterations"] if args.quick else 200)


def names(text: str, flag: str, expected: str = M, what: str = "method") -> list[str]:
    """`es, adam` → ['es', 'adam']; empty or repeated names are errors naming `flag`."""
    items = [m.strip() for m in text.split(",") if m.strip()]
    if not items:
        raise ValueError(f"{flag} is empty; expected some of {expected}")
    repeated = [x for i, x in enumerate(items) if x in items[:i]]
    if repeated:
        raise ValueError(f"{flag} lists the {what} {repeated[0]!r} twice; list each once")
    return items


def describe(command: str, args: argparse.Namespace):
    """The run description (`Run`, `CompareRun`, `ExploreRun`) the flags name."""
    objective, regulator = objective_from_options(args), regulator_from_options(args)
    if command == "explore":
        strategies = {}
        for m in names(args.method, "explore --method", ", ".join(CHOICES["method"])):
            if m not in CHOICES["method"]:
                raise ValueError(f"explore --method must be imgep, random or both; got {m!r}")
            strategies[m] = make(IMGEP, args) if m == "imgep" else CHOICES["method"][m]()
        budget = args.budget if args.budget is not None else (Q["budget"] if args.quick else 2000)
        return make(ExploreRun, args, objective=objective, regulator=regulator,
                    strategies=strategies, budget=budget)  # fmt: skip
    flag_ = "compare --methods" if command == "compare" else "train --method"
    listed = names(args.methods if command == "compare" else args.method, flag_)
    methods = {m: method_from_options(m, args) for m in listed}
    iterations = {m: iterations_from_options(methods[m], args) for m in listed}
    if command == "train":
        if len(listed) != 1:
            raise ValueError(f"train --method takes one method; got {args.method!r}")
        (m,) = listed
        return make(Run, args, objective=objective, regulator=regulator, method=methods[m],
                    iterations=iterations[m])  # fmt: skip
    seeds = numbers(args.seeds, "compare --seeds", int)
    seeds = seeds[0] if len(seeds) == 1 and "," not in args.seeds else list(seeds)
    return make(CompareRun, args, objective=objective, regulator=regulator, methods=methods,
                iterations=iterations, seeds=seeds)  # fmt: skip


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except for flags and for None defaults explained in the help."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)
