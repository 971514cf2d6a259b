"""The command line's options, derived from the objects they set. Each flag names the
fields it sets (`Class.field`); its help is the first field's documentation
(`config.field_docs`) and its default the field's constructor default, unless the table
says otherwise; a choice among classes lists a base's concrete subclasses by short name
(`MLPRegulator` → `mlp`); the objects check the values, and their errors name the flag
(`FIELDS`). Shared by the `diffgrn` command and the studies (`studies/common.py`)."""

import argparse
import inspect
import re
from pathlib import Path
from typing import NamedTuple

import jax.random as jr

from .config import field_docs, find_class, known
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


def numbers(text: str, flag: str = "", kind: type = float) -> tuple:
    """`0.1,0.05` → (0.1, 0.05); a ValueError names `flag`."""
    try:
        return tuple(kind(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{flag} must be comma-separated {what}; got {text!r}") from None


def ints(text: str) -> tuple:
    return numbers(text, "", int)


class Flag(NamedTuple):
    flag: str
    fields: str  # the `Class.field`s it sets, space-separated; a bare `Class`: applies
    #   when the run holds one; "": sets none
    help: str  # "": the first field's documentation (prefixed with `scope: `)
    quick: object  # not None: the value under --quick (the default is then None)
    scope: str  # the methods it applies to, e.g. "es" (shown first in the help)
    kw: dict


def flag(name: str, fields: str = "", help: str = "", quick=None, scope="", **kw) -> Flag:
    return Flag(name, fields, help, quick, scope, kw)


def flags(scope: str, *table: str, **kw) -> list[Flag]:
    """Flags `--flag Class.field …` whose help is their field's documentation."""
    return [flag(n, " ".join(f), scope=scope, **kw) for n, *f in map(str.split, table)]


CHOICES = dict(
    constraint=classes(AbstractConstraint),
    noise=classes(AbstractNoise),
    regulator=classes(AbstractRegulator),
    estimator=classes(AbstractEstimator, **{"inverse-variance": InverseVariance}),
    pattern_score=classes(AbstractPatternScore),
)
EXPLORATIONS = classes(AbstractExploration)
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
    flag("--fate-genes", "Objective.fate_genes", type=ints, default=(0,)),
    flag("--t-final", "Dynamics.t_final", "horizon T", quick=5.0, type=float),
    flag("--dt", "Dynamics.dt", "Euler step", quick=0.02, type=float),
    flag("--sigma", "Dynamics.sigma", "noise σ, one number or one per gene (e.g. 0.1,0.05)",
         type=numbers),
    flag("--constraint", "Dynamics.constraint", "state constraint after every step (clip: "
         "model.md)", default="clip"),
    flag("--noise", "Dynamics.noise", "how the Brownian increments are drawn: counter (inside "
         "each step, memory flat in T), grid (stored; diffgrn <= 0.4's numbers), virtual-tree, "
         "no (σ = 0)", default="counter"),
    flag("--replicates", "Objective.replicates", quick=32, type=int),
    *flags("", "--max-stiffness Objective.max_stiffness", type=float),
    *flags("", "--temperature SoftReadout.temperature", "--bandwidth Objective.bandwidth"),
    flag("--target-pattern", "TargetPattern.pattern", "optimise toward this pattern, not U: "
         "0/1 per cell, e.g. 1001001 (row-major on a lattice; one readout gene)", default=None),
    flag("--pattern-score", "TargetPattern.score", "with --target-pattern: per-cell agreement, "
         "or the fraction of replicates that hit it exactly", default="agreement"),
    flag("--regulator", "", "mlp: model.md's 1 -> 8 -> 8 -> 1 MLP; tanh: a*tanh(-b(s-c)), "
         "3 parameters (one gene); transcriptional: sigmoid(W s + V s̄ + b) - k s", default="mlp"),
]
METHODS = [
    flag("--generations", "MuPlusLambdaES CMAES RandomSearch Evosax", "es, cmaes, random, "
         "evosax generations", quick=25, default=200),
    flag("--steps", "Gradient", "adam, openes, hybrid, pbt steps", quick=25,
         default=200),
    flag("--population", "MuPlusLambdaES.population CMAES.population RandomSearch.population "
         "Evosax.population", scope="es, cmaes, random, evosax"),
    *flags("es", "--parents MuPlusLambdaES.parents", "--mutation MuPlusLambdaES.mutation"),
    *flags("cmaes, hybrid, evosax", "--cma-sigma CMAES.sigma Evosax.sigma"),
    *flags("adam, openes, hybrid, pbt", "--lr ClippedAdam.learning_rate"),
    flag("--clip", "ClippedAdam.clip", "global-norm clip of the gradient",
         scope="adam, openes, hybrid, pbt"),
    *flags("openes and the antithetic-es, inverse-variance estimators",
           "--es-sigma AntitheticES.sigma", "--es-pairs AntitheticES.pairs"),
    *flags("adam, hybrid, pbt", "--backprop-steps Pathwise.backprop_steps", type=int),
    *flags("pbt", "--learners GradientPopulation.learners", "--spread GradientPopulation.spread"),
    flag("--grad-replicates", "Pathwise.replicates", "replicates per pathwise estimate",
         scope="adam, hybrid, pbt", default=25),
    flag("--estimator", "Gradient.estimator", "adam, hybrid, pbt: pathwise ∇U_soft; "
         "likelihood-ratio ∇U_hard (path-space score); antithetic-es ∇U_hard; inverse-variance: "
         "pathwise and antithetic-es combined per parameter", default="pathwise"),
    flag("--bandwidth-to", "Gradient.bandwidth", "adam, hybrid, pbt: anneal h linearly from "
         "--bandwidth to this over the first 3/4 of the steps (None: constant)", type=float),
    flag("--temperature-to", "Gradient.temperature", "likewise τ from --temperature (None: "
         "constant)", type=float),
    flag("--switch", "Hybrid.switch", "hybrid: cmaes generations before Adam", default=10),
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
        flag("--seeds", "CompareRun.seeds", default="1"),
        flag("--target", "CompareRun.target", type=float),
        flag("--reassess", "CompareRun.reassess", default=20),
        *flags("", "--reassess-repeats CompareRun.reassess_repeats",
               "--baseline CompareRun.baseline"),
        flag("--merge", "", "with --collect: add other compare folders of one method each "
             "under a label, LABEL=DIR,..."),
        flag("--collect", "", "train nothing: tabulate the METHOD-seedK runs in --out",
             action="store_true"),
    ],
    explore=[
        flag("--method", "", "imgep, random, or both comma-separated", default="imgep,random"),
        flag("--budget", "ExploreRun.budget", "simulations per method", quick=200,
             default=2000),
        flag("--descriptors", "ExploreRun.descriptors", "comma-separated: fraction, boundaries, "
             "like, srep, dominant", default="fraction,boundaries,dominant"),
        *flags("", "--batch ExploreRun.batch", "--bins ExploreRun.bins"),
        *flags("", "--scale ExploreRun.scale"),
        *flags("imgep", "--mutation IMGEP.mutation"),
    ],
)
COMMON = [
    flag("--quick", "", "a smoke run, not a comparison: ", action="store_true"),
    flag("--config", "", "run what a run.json, history.json, compare.json or explore.json "
         "describes (--out, --overwrite, --no-progress, train's --checkpoint-every apply)",
         type=Path),
    flag("--seed", "Run.seed CompareRun.seed ExploreRun.seed", "seed of the start, of the "
         "training or exploration and of its noise"),
    flag("--out", "Run.out CompareRun.out ExploreRun.out", type=Path),
    flag("--overwrite", "", "replace an existing --out folder that diffgrn wrote (whole: no "
         "stale files)", action="store_true"),
    flag("--no-progress", "", "no progress bar or log lines", action="store_true"),
]
# fmt: on
OPTIONS = MODEL + METHODS + COMMON + sum(COMMANDS.values(), [])


def quick(command: str) -> str:
    """`--t-final 5.0, --dt 0.02, …`: the values `--quick` gives a command's flags."""
    options = COMMANDS[command] + MODEL + (METHODS if command != "explore" else [])
    return ", ".join(dict.fromkeys(f"{o.flag} {o.quick}" for o in options if o.quick is not None))


def common(command: str) -> list[Flag]:
    """The flags every command takes, `--quick`'s help naming that command's values."""
    return [COMMON[0]._replace(help=f"{COMMON[0].help}{quick(command)} unless given"), *COMMON[1:]]


FIELDS: dict = {}
"""`Class.field` → the flags that set it (errors name the flag); a bare `Class`: the
flag applies when the run holds one."""
for o in OPTIONS:
    for f in o.fields.split():
        FIELDS.setdefault(f, []).append(o.flag)
NAMED = {
    **dict.fromkeys(("train.iterations", "Run.iterations", "CompareRun.iterations",
                     "compare.iterations"), ["--steps", "--generations"]),  # the one typed
    "Evosax.strategy": ["--method", "--methods"],
}  # fmt: skip
"""Names in errors that a flag sets through a recipe, not as a field: the flags."""


RELAXATION = {"Objective.bandwidth", "SoftReadout.temperature", "Gradient.bandwidth",
              "Gradient.temperature"}  # fmt: skip
"""Fields only the soft relaxation reads (h, τ and their schedules): they apply when an
estimator is `relaxed`."""


def _dest(o: Flag) -> str:
    return o.flag[2:].replace("-", "_")


def _field(o: Flag):
    """The first field a flag sets: (class, name), or None."""
    cls, _, name = (o.fields.split() or [""])[0].partition(".")
    return (find_class({"type": cls}), name) if name else None


def add(group, options) -> None:
    """Add `options` (`Flag`s) to an argparse parser or group: help, type and default
    from the fields they set, choices of classes from `CHOICES`."""
    for o in options:
        kw, field, text = dict(o.kw), _field(o), o.help
        if field and not text:  # the field's docs; `name`s of fields with a flag: the flag
            text = re.sub(r"\s*\(default[^)]*\)", "", field_docs(field[0]).get(field[1], ""))
            owner = field[0].__name__
            text = re.sub(r"`(\w+)`", lambda m, c=owner: FIELDS.get(f"{c}.{m[1]}", [m[1]])[0], text)
            text = text.replace("`", "").rstrip(".")
            text = (text[:1].lower() if text[1:2].islower() else text[:1]) + text[1:]
        text = f"{o.scope}: {text}" if o.scope else text
        if field and "default" not in kw and "action" not in kw:
            kw["default"] = inspect.signature(field[0]).parameters[field[1]].default
        if o.quick is not None:  # None, so that --quick can tell it was not given
            d, kw["type"] = kw.pop("default", None), kw.get("type", type(o.quick))
            text += f" ({'' if d is None else f'default: {d}; '}{o.quick} with --quick)"
        if "type" not in kw and isinstance(kw.get("default"), (int, float)):
            kw["type"] = type(kw["default"])
        elif kw.get("type") in (numbers, ints) and not isinstance(kw.get("default"), str):
            d = kw.get("default")  # a string, so that argparse converts it as it does a flag
            kw["default"] = ",".join(map(str, d)) if isinstance(d, tuple) else d and str(d)
        if _dest(o) in CHOICES:
            kw["choices"] = tuple(CHOICES[_dest(o)])
        group.add_argument(o.flag, help=text.replace("%", "%%"), **kw)


def value(args: argparse.Namespace, name: str):
    """The option `name` (a destination) as given, else its value under --quick if that
    was given, else the table's default (a field's own default: None)."""
    v = getattr(args, name, None)
    o = next((o for o in OPTIONS if _dest(o) == name and o.quick is not None), None)
    return v if v is not None or o is None else o.quick if args.quick else o.kw.get("default")


def make(cls: type, args: argparse.Namespace, **fixed):
    """`cls` built from the flags that set its fields (those given, or --quick's), with
    class choices (`CHOICES`) built from their defaults, and `fixed`."""
    names, kw = inspect.signature(cls).parameters, {}
    for o in OPTIONS:
        for c, _, f in (x.partition(".") for x in o.fields.split()):
            if c == cls.__name__ and f in names and f not in fixed and hasattr(args, _dest(o)):
                v = value(args, _dest(o))
                kw[f] = CHOICES[_dest(o)][v]() if _dest(o) in CHOICES and v is not None else v
    return cls(**{k: v for k, v in kw.items() if v is not None}, **fixed)


def add_tissue_options(group, cells: bool = True) -> None:
    """`--tissue`, `--size`, `--boundary`, (`--cells`,) `--genes` and `--inputs`."""
    add(group, [o for o in MODEL[:6] if cells or o.flag != "--cells"])


TISSUE_OPTIONS = ("tissue", "size", "boundary", "genes", "inputs")


def tissue_from_options(args: argparse.Namespace) -> Tissue:
    """The tissue `--tissue`, `--size`, `--boundary` (and `--cells`) name."""
    size = args.size
    if args.tissue == "chain":
        if size is not None and not size.strip().isdigit():
            raise ValueError(f"--size for a chain is one number of cells (a lattice: --tissue "
                             f"square or hex); got {size!r}")  # fmt: skip
        return Chain(int(size) if size else getattr(args, "cells", 7), args.boundary)
    dims = re.fullmatch(r"\s*(\d+)\s*(?:x\s*(\d+)\s*)?", (size or "10x10").lower())
    if dims is None:
        raise ValueError(f"--size for a lattice is ROWSxCOLS (e.g. 20x20) or N; got {size!r}")
    return Lattice(int(dims[1]), int(dims[2] or dims[1]), args.tissue, args.boundary)


def objective_from_options(args: argparse.Namespace) -> Objective:
    """The objective the model options name."""
    sigma = args.sigma if isinstance(args.sigma, tuple) else (args.sigma,)
    dynamics = make(Dynamics, args, sigma=sigma[0] if len(sigma) == 1 else sigma)
    given = args.target_pattern is not None
    utility = make(TargetPattern, args) if given else PatternInformation()
    return make(Objective, args, tissue=tissue_from_options(args), dynamics=dynamics,
                readout=make(SoftReadout, args), utility=utility)  # fmt: skip


def regulator_from_options(args: argparse.Namespace, key=None) -> AbstractRegulator:
    """The starting regulator `--regulator` names, drawn with `key` if its class takes one."""
    cls = CHOICES["regulator"][args.regulator]
    keyed = "key" in inspect.signature(cls).parameters
    return make(cls, args, **(dict(key=jr.key(0) if key is None else key) if keyed else {}))


def method_from_options(name: str, args: argparse.Namespace, flag_: str = "--method"):
    """The method a name (`M`) and the method options describe."""
    steps = value(args, "steps") - (args.switch if name == "hybrid" else 0)

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
        raise ValueError(f"{flag_}: unknown method {name!r}; expected one of {M}")
    return recipes[name.partition(":")[0]]()


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
        for m in names(args.method, "explore --method", ", ".join(EXPLORATIONS)):
            if m not in EXPLORATIONS:
                raise ValueError(f"explore --method must be imgep, random or both; got {m!r}")
            strategies[m] = make(IMGEP, args) if m == "imgep" else EXPLORATIONS[m]()
        return make(ExploreRun, args, objective=objective, regulator=regulator,
                    strategies=strategies, budget=value(args, "budget"))  # fmt: skip
    flag_ = "compare --methods" if command == "compare" else "train --method"
    listed = names(args.methods if command == "compare" else args.method, flag_)
    methods = {m: method_from_options(m, args, flag_.split()[-1]) for m in listed}
    iterations = {
        m: value(args, "generations" if isinstance(x, AbstractPopulationMethod) else "steps")
        for m, x in methods.items()
    }
    if command == "train":
        if len(listed) != 1:
            raise ValueError(f"train --method takes one method; got {args.method!r}")
        return make(Run, args, objective=objective, regulator=regulator,
                    method=methods[listed[0]], iterations=iterations[listed[0]])  # fmt: skip
    seeds = numbers(args.seeds, "compare --seeds", int)
    seeds = seeds[0] if len(seeds) == 1 and "," not in args.seeds else list(seeds)
    return make(CompareRun, args, objective=objective, regulator=regulator, methods=methods,
                iterations=iterations, seeds=seeds)  # fmt: skip


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except for flags, None defaults and helps that give it."""

    def _get_help_string(self, action):
        d, text = action.default, action.help or ""
        if d is None or d is False or d == argparse.SUPPRESS or "(default" in text:
            return text
        return super()._get_help_string(action)
