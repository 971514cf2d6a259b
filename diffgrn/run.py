"""One run, described by one object: what `train` consumes, what a run folder records
(`history.json`'s `run` and `run.json`), what `diffgrn rerun DIR` and
`diffgrn train --resume DIR` rebuild, and what `diffgrn train` builds from its flags
(`diffgrn train --config run.json` runs one from a file).

    run = diffgrn.Run(objective, diffgrn.MLPRegulator(key=jr.key(0)), diffgrn.CMAES(), seed=3)
    result = run.train()
    result, fresh = run.execute()             # and write its folder (runs/cmaes-open-seed3)
    diffgrn.Run.from_config(run.config())     # the same run
"""

import contextlib
import dataclasses
import inspect
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax.random as jr

from ._interrupt import held
from ._runs import MAX_SEED, RunFolder, Unfinished, check_out, record, write_run
from ._validate import check_range
from .config import Configurable, decode, find_class, from_config
from .io import write_text
from .methods import AbstractMethod
from .objective import Objective
from .regulator import AbstractRegulator
from .space import SearchSpace
from .tissue import Chain
from .train import TrainResult, train

__all__ = ["CompareRun", "ExploreRun", "Run", "load_run"]


class Run(Configurable):
    """A whole training run: `objective`, the starting `regulator`, the `method`, the
    budget (`iterations`; `None`: the method's default), the `seed`, re-assessment
    (`reassess`, `reassess_repeats`: see `train`), checkpointing (`checkpoint_every`),
    the output folder `out` (`None`: `runs/METHOD-TISSUE-seedS`) and the search `space`
    that bounds the method (`None`: every parameter, unbounded; see `train`).

    The seed gives two keys: the first draws the starting regulator's parameters
    where its class takes a `key` (an `MLPRegulator` given here is a template: the
    run holds the one drawn from its seed, so its config rebuilds it), the second
    trains. A regulator whose class takes no key (e.g. `TanhRegulator(1, 10, 0.5)`)
    starts from its own parameters, which its config must describe.
    """

    objective: Objective
    regulator: AbstractRegulator
    method: AbstractMethod
    iterations: int | None = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    """Seed of the start and of training."""
    reassess: int | None = eqx.field(static=True)
    reassess_repeats: int = eqx.field(static=True)
    checkpoint_every: int | None = eqx.field(static=True)
    """Checkpoint every K iterations (and on Ctrl-C) in OUT.checkpoint/."""
    out: str | None = eqx.field(static=True)
    """Output folder (None: runs/ and a name from the run)."""
    space: SearchSpace | None

    def __init__(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        method: AbstractMethod,
        iterations: int | None = None,
        seed: int = 0,
        reassess: int | None = None,
        reassess_repeats: int = 10,
        checkpoint_every: int | None = None,
        out: "str | os.PathLike | None" = None,
        space: SearchSpace | None = None,
    ):
        if not isinstance(objective, Objective):
            raise ValueError(f"Run.objective must be a diffgrn.Objective; got {objective!r}")
        if not isinstance(regulator, AbstractRegulator):
            raise ValueError(f"Run.regulator must be a diffgrn regulator; got {regulator!r}")
        if not isinstance(method, AbstractMethod):
            raise ValueError(f"Run.method must be a diffgrn method object; got {method!r}")
        check_range("Run", "seed", seed, ge=0, le=MAX_SEED, integer=True)
        for name, value, least in (
            ("iterations", iterations, 1),
            ("reassess", reassess, 1),
            ("checkpoint_every", checkpoint_every, 1),
        ):
            if value is not None:
                check_range("Run", name, value, ge=least, integer=True)
        check_range("Run", "reassess_repeats", reassess_repeats, ge=2, integer=True)
        self.objective, self.method = objective, method
        self.iterations, self.seed, self.out = iterations, int(seed), out and str(out)
        self.reassess, self.reassess_repeats = reassess, reassess_repeats
        self.checkpoint_every = checkpoint_every
        if space is not None and not isinstance(space, SearchSpace):
            raise ValueError(f"Run.space must be a diffgrn.space.SearchSpace; got {space!r}")
        self.space = space
        self.regulator = _drawn(regulator, jr.split(jr.key(self.seed))[0])
        objective.check_regulator(self.regulator)
        method.check_iterations(self.n_iterations)

    @property
    def n_iterations(self) -> int:
        return self.method.default_iterations if self.iterations is None else self.iterations

    @property
    def folder(self) -> Path:
        """`out`, or `runs/METHOD-TISSUE-seedS`."""
        if self.out is not None:
            return Path(self.out)
        name = self.method.name.replace(":", "-")
        return Path("runs") / f"{name}-{tissue_label(self.objective)}-seed{self.seed}"

    @property
    def checkpoint_folder(self) -> Path:
        return self.folder.parent / f"{self.folder.name}.checkpoint"

    def replace(self, **changes) -> "Run":
        return type(self)(**{**self.arguments(), "regulator": self.regulator, **changes})

    def arguments(self) -> dict:
        out = super().arguments()
        reg = self.regulator
        if not _takes_key(type(reg)) and not eqx.tree_equal(from_arguments(reg.config()), reg):
            raise TypeError(
                f"Run.regulator: the parameters of this {type(reg).__name__} are not in its "
                "config (only its constructor arguments are), so a saved run cannot start "
                "from them; pass them as constructor arguments"
            )
        return out

    def train(self, *, progress: bool = True, resume: bool = False, callback=None) -> TrainResult:
        """`train` on this run (checkpoints beside the folder with `checkpoint_every`)."""
        checkpoint = self.checkpoint_folder if self.checkpoint_every or resume else None
        return train(
            self.objective,
            self.regulator,
            self.method,
            key=jr.split(jr.key(self.seed))[1],
            iterations=self.n_iterations,
            progress=progress,
            callback=callback,
            checkpoint=checkpoint,
            checkpoint_every=self.checkpoint_every,
            resume=resume,
            reassess=self.reassess,
            reassess_repeats=self.reassess_repeats,
            space=self.space,
        )

    def execute(
        self,
        *,
        progress: bool = True,
        overwrite: bool = False,
        resume: bool = False,
        command: list[str] | None = None,
    ) -> tuple[TrainResult, dict]:
        """Train and write the run folder whole (regulators, `history.json` with this
        description as `run`, `run.json`, figures); (result, fresh-noise assessment).
        The folder is checked and locked before any compute; `resume` continues from
        the checkpoint; `command` is recorded with the seed and package versions. When
        the assessment after training is interrupted or fails, the trained result is
        kept in the folder and `diffgrn._runs.Unfinished` says so."""
        out, ckpt = self.folder, self.checkpoint_folder
        description = self.config()  # before any compute: a run that cannot be saved fails now
        with RunFolder(out, overwrite or resume) as folder:
            if self.checkpoint_every is not None and not resume:
                ckpt.mkdir(parents=True, exist_ok=True)
                write_text(ckpt / "run.json", json.dumps(description, indent=1))  # whole
            result = self.train(progress=progress, resume=resume)
            config = {**result.config, "run": record(self.seed, command)}  # not in place
            result = dataclasses.replace(result, config=config)
            if progress:  # tens of seconds more, after the bar: say what they are
                print(f"assessing the best regulator on fresh noise, checking dt/5 and "
                      f"drawing figures into {out} …", file=sys.stderr)  # fmt: skip
            try:
                fresh = write_run(
                    folder.tmp,
                    self.objective,
                    result,
                    self.seed,
                    self.method.name,
                    run=description,
                )
            except Unfinished as e:  # keep the trained result: training is the costly part
                folder.commit()
                raise Unfinished(
                    f"{e}; the trained regulators (best/, final/) and history.json are saved "
                    f"in {out}; diffgrn.assess(objective, diffgrn.load('{out}/best').regulator, "
                    "key=...) assesses it again",
                    e.interrupted,
                ) from e.__cause__
            folder.commit()
        if ckpt.exists() and not interrupted(result):
            with held():  # the run is whole: no need to resume
                shutil.rmtree(ckpt, ignore_errors=True)
        return result, fresh


def interrupted(result: TrainResult) -> bool:
    return bool(result.error) and result.error.startswith("interrupted")


RUNS = ("Run", "CompareRun", "ExploreRun")


def load_run(path: "str | os.PathLike", flag: str = "load_run") -> "Run | CompareRun | ExploreRun":
    """The run a `run.json`, a run folder's `history.json` (its `run`), or a
    `compare.json` / `explore.json` (its `description`) describes; a folder is looked
    into for those files. A missing, truncated or wrong file is a ValueError naming it."""
    path = Path(path)
    if path.is_dir():
        names = ("run.json", "history.json", "compare.json", "explore.json")
        path = next((p for p in (path / n for n in names) if p.is_file()), path)
    if not path.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{flag} {path} is not valid JSON (truncated?): {e}") from None
    if isinstance(config, dict) and "type" not in config:
        config = config.get("description") or config.get("run")  # compare/explore, train
    if not isinstance(config, dict) or config.get("type") not in RUNS:
        raise ValueError(
            f"{flag} {path} does not describe a run (expected a run.json, or a history.json, "
            f"compare.json or explore.json written by diffgrn {', '.join(RUNS)}); got "
            f"{_short(config)}"
        )
    try:
        return from_config(config)
    except (TypeError, ValueError, ImportError, AttributeError) as e:
        raise ValueError(f"{flag} {path}: {e}") from None


def _short(value) -> str:
    text = repr(value if not isinstance(value, dict) else {k: "…" for k in value})
    return text if len(text) < 120 else text[:117] + "..."


def _takes_key(cls) -> bool:
    try:
        return "key" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def from_arguments(config: dict, **extra):
    """The object a config describes, built with `extra` keyword arguments (a key)."""
    cls = find_class(config)
    kwargs = {k: decode(v) for k, v in config.items() if k not in ("type", "file")}
    if "key" not in extra and _takes_key(cls):
        extra["key"] = jr.key(0)
    return cls(**kwargs, **extra)


def _drawn(regulator: AbstractRegulator, key) -> AbstractRegulator:
    """The regulator its config describes, its parameters drawn with `key`."""
    return from_arguments(regulator.config(), key=key) if _takes_key(type(regulator)) else regulator


def tissue_label(objective: Objective) -> str:
    """`open` for an open chain, `hex10x10-pinned` for a lattice (folder names)."""
    c = objective.tissue.config()
    if isinstance(objective.tissue, Chain):
        return c["boundary"]
    return f"{c.get('geometry', 'graph')}{c.get('rows', '')}x{c.get('cols', '')}-{c['boundary']}"


def _repeats(owner: str, field: str, items, what: str) -> None:
    """A ValueError naming `owner.field` when a value is listed twice."""
    items = list(items)
    repeated = [x for i, x in enumerate(items) if x in items[:i]]
    if repeated:
        raise ValueError(
            f"{owner}.{field} lists the {what} {repeated[0]!r} twice; list each once "
            f"(got {','.join(map(str, items))})"
        )


class CompareRun(Configurable):
    """Several `methods` (name → method) trained from the same starts over `seeds` (a
    count, or a list of seeds) on one `objective`, each start drawn from the
    `regulator` template with the seed's key (`seed` is the base key); `iterations`
    per method (missing: the method's default); `target`, `reassess` and
    `reassess_repeats` judge time-to-target by the fair rule (`reassess=None`: on
    single monitored draws); `baseline` is the method speed-ups are measured against.
    `execute()` writes one run folder per method and seed into `out` (default
    `runs/compare-TISSUE`) and `compare.md`, `compare.json` (with this description)
    and `compare.png`."""

    objective: Objective
    regulator: AbstractRegulator
    methods: dict
    iterations: dict = eqx.field(static=True)
    seeds: int | tuple = eqx.field(static=True)
    """Seeds per method: a count, or a list such as 0,3 (the same start per seed)."""
    seed: int = eqx.field(static=True)
    target: float | None = eqx.field(static=True)
    """Target score for time-to-target and success rate (a utility to reach, or a loss
    to get under; None: no target)."""
    reassess: int | None = eqx.field(static=True)
    """Re-assess the candidate at about 1.5 × this many iterations, spread over the run
    (`train(reassess=…)`), on `reassess_repeats` fresh draws each: the target is reached
    when the mean's 95% bound crosses it (the lower bound; a loss's upper; 0: judge single
    draws)."""
    reassess_repeats: int = eqx.field(static=True)
    """Fresh draws per re-assessment (>= 2)."""
    baseline: str | None = eqx.field(static=True)
    """The method speed-ups are measured against (None: es if compared, else cmaes, else none)."""
    out: str | None = eqx.field(static=True)

    def __init__(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        methods: dict,
        iterations: dict | None = None,
        seeds: "int | Sequence[int]" = 1,
        seed: int = 0,
        target: float | None = None,
        reassess: int | None = 20,
        reassess_repeats: int = 10,
        baseline: str | None = None,
        out: "str | os.PathLike | None" = None,
    ):
        from .compare import check_target

        if not isinstance(objective, Objective):
            raise ValueError(f"CompareRun.objective must be a diffgrn.Objective; got {objective!r}")
        if not isinstance(methods, dict) or not methods:
            raise ValueError(f"CompareRun.methods must name some methods; got {methods!r}")
        for name, method in methods.items():
            if not isinstance(method, AbstractMethod):
                raise ValueError(f"CompareRun.methods[{name!r}] is not a method: {method!r}")
        check_range("CompareRun", "seed", seed, ge=0, le=MAX_SEED, integer=True)
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            check_range("CompareRun", "seeds", seeds, ge=1, le=MAX_SEED + 1, integer=True)
        else:
            seeds = tuple(seeds) if isinstance(seeds, (list, tuple, range)) else (seeds,)
            if not seeds or any(
                not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED
                for s in seeds
            ):
                raise ValueError(
                    f"CompareRun.seeds must be a count >= 1 or a list of seeds in [0, "
                    f"{MAX_SEED}]; got {seeds!r}"
                )
            _repeats("CompareRun", "seeds", seeds, "seed")
        try:
            check_target(target, objective)
        except ValueError:
            raise ValueError(
                f"CompareRun.target must be a number in (0, "
                f"{objective.utility.upper(objective.n_fates):g}] (the utility's largest "
                f"value: log2 K bits per cell for U, inf for a loss); got {target}"
            ) from None
        if reassess is not None:  # 0: off, as None
            check_range("CompareRun", "reassess", reassess, ge=0, integer=True)
        check_range("CompareRun", "reassess_repeats", reassess_repeats, ge=2, integer=True)
        if baseline is not None and baseline not in methods:
            raise ValueError(
                f"CompareRun.baseline {baseline!r} is not among the methods ({', '.join(methods)})"
            )
        iterations = dict(iterations or {})
        for name, n in iterations.items():
            if name not in methods:
                raise ValueError(f"CompareRun.iterations names {name!r}, not a compared method")
            if n is not None:
                methods[name].check_iterations(n)
        objective.check_regulator(regulator)
        self.objective, self.regulator, self.methods = objective, regulator, dict(methods)
        self.iterations, self.seeds, self.seed, self.target = iterations, seeds, int(seed), target
        self.reassess, self.reassess_repeats, self.baseline = reassess, reassess_repeats, baseline
        self.out = out and str(out)

    @property
    def folder(self) -> Path:
        return Path(self.out or Path("runs") / f"compare-{tissue_label(self.objective)}")

    def execute(self, *, progress: bool = True, overwrite: bool = False, command=None, log=print):
        """Train and write every run, then the comparison; (comparison, table, errors).
        Every run folder is checked and locked before anything is compiled; each is
        written whole as it finishes (`log` prints a line), so an interrupt
        (`KeyboardInterrupt`, propagated) keeps the finished ones."""
        from ._runs import write_comparison

        out = self.folder
        check_out(out, overwrite=True, own=False)  # shared: run folders are checked one by one
        held = [n for n in ("compare.json", "compare.md") if (out / n).exists()]
        if held and not overwrite:
            raise ValueError(
                f"--out {out} already holds a comparison ({held[0]}); choose another folder, "
                "pass --overwrite to replace it, or tabulate its runs with --collect"
            )
        description = self.config()  # before any compute: a run that cannot be saved fails now
        seeds = range(self.seeds) if isinstance(self.seeds, int) else self.seeds
        errors = []
        with contextlib.ExitStack() as stack:
            folders = {
                (n, s): stack.enter_context(RunFolder(out / f"{n}-seed{s}", overwrite))
                for n in self.methods
                for s in seeds
            }

            def on_run(name, seed, res, fresh):
                res.config["run"] = record(seed, command)
                folder = folders[(name, seed)]
                try:  # fresh None: compare could not assess it; the trained result is kept
                    write_run(folder.tmp, self.objective, res, seed, name, fresh, assess=False)
                except Unfinished as e:
                    folder.commit()
                    if fresh is None or not e.interrupted:
                        what = f"trained, saved in {folder.target}; {e}"
                        print(f"{name} seed {seed}: {what}", file=sys.stderr)
                        return
                    raise KeyboardInterrupt from e  # interrupted drawing figures: run saved
                folder.commit()
                errors.extend([res.error] if res.error else [])
                if interrupted(res):
                    raise KeyboardInterrupt
                wall = res.history.wall_time[-1] if len(res.history) else 0
                error = f" [error: {res.error}]" if res.error else ""
                log(f"{name} seed {seed}: fresh-noise hard U {fresh['mean']:.4f} ± "
                    f"{fresh['std']:.4f}, {wall:.1f} s in method steps{error}")  # fmt: skip

            try:
                comparison = self._compare(on_run, progress)
            except KeyboardInterrupt:
                raise Unfinished(
                    f"compare interrupted: the finished runs are in {out}; tabulate them "
                    "with --collect",
                    interrupted=True,
                ) from None
        table = write_comparison(
            out, comparison, self.objective, self.target, self.baseline, command, description
        )
        return comparison, table, errors

    def tabulate(self, merge=None, *, baseline=None, command=None, log=print) -> str:
        """Tabulate the finished runs in `out`, as `diffgrn compare --collect` does (after
        an interrupt, say), with the runs of other folders of one method each added under
        labels (`merge`: label → folder); writes `compare.md`, `compare.json` and
        `compare.png` and returns the table. A folder a compare wrote keeps its
        description (so `rerun` still reruns it), its target and its baseline unless
        this run (or `baseline`) sets them; runs it cannot tabulate (unfinished, broken,
        misnamed) are named through `log` and left out."""
        from ._runs import write_comparison
        from .compare import collect_merged

        out, target, description, objective = self.folder, self.target, None, self.objective
        baseline, kept = baseline or self.baseline, None
        if (out / "compare.json").is_file() and not merge:  # a compare's own folder
            try:
                earlier = load_run(out / "compare.json", "compare --collect:")
            except ValueError as e:  # written before descriptions, or broken: replaced
                log(f"compare --collect: not kept: {e}")
            else:
                description, objective = earlier.config(), earlier.objective
                target = earlier.target if target is None else target
                kept = None if baseline else earlier.baseline
        comparison = collect_merged(out, target, merge)
        for name, why in comparison.skipped.items():
            log(f"compare --collect: not tabulated: {name}: {why}")
        if kept is not None and kept not in comparison.runs:
            log(f"compare --collect: not kept: the baseline {kept!r} (no finished runs of it)")
        elif kept is not None:
            baseline = kept
        return write_comparison(out, comparison, objective, target, baseline, command, description)

    def _compare(self, on_run, progress):
        from .compare import compare

        return compare(
            self.objective,
            self.methods,
            key=jr.key(self.seed),
            seeds=self.seeds if isinstance(self.seeds, int) else list(self.seeds),
            iterations={n: self.iterations.get(n) for n in self.methods},
            target=self.target,
            progress=progress,
            on_run=on_run,
            make_regulator=lambda k: _drawn(self.regulator, k),
            reassess=self.reassess if self.target is not None and self.reassess else None,
            reassess_repeats=self.reassess_repeats,
        )


class ExploreRun(Configurable):
    """Which patterns can the tissue make? Each of `strategies` (name → strategy, e.g.
    `{"imgep": IMGEP(), "random": RandomExploration()}`) explores with `budget`
    simulations of regulators shaped like `regulator` (drawn from `seed`'s first key),
    from the same first random round (the second key); `descriptors`, `batch`,
    `scale` and `bins` as `explore`. `execute()` writes one library per strategy,
    `coverage.png` and `explore.json` (with this description) into `out`."""

    objective: Objective
    regulator: AbstractRegulator
    strategies: dict
    descriptors: tuple
    """What is measured of each pattern: fraction, boundaries, like, srep, dominant."""
    budget: int = eqx.field(static=True)
    """Simulations per strategy."""
    batch: int = eqx.field(static=True)
    """Regulators simulated per round."""
    scale: float = eqx.field(static=True)
    """Random draws' scale around the start θ₀."""
    bins: int = eqx.field(static=True)
    """Bins per descriptor for coverage."""
    seed: int = eqx.field(static=True)
    out: str | None = eqx.field(static=True)

    def __init__(
        self,
        objective: Objective,
        regulator: AbstractRegulator,
        strategies: dict,
        descriptors: "Sequence | str | None" = None,
        budget: int = 2000,
        batch: int = 50,
        scale: float = 1.0,
        bins: int = 20,
        seed: int = 0,
        out: "str | os.PathLike | None" = None,
    ):
        from .discovery import AbstractExploration, default_descriptors, get_descriptors

        if not isinstance(objective, Objective):
            raise ValueError(f"ExploreRun.objective must be a diffgrn.Objective; got {objective!r}")
        if not isinstance(strategies, dict) or not strategies:
            raise ValueError(f"ExploreRun.strategies must name some; got {strategies!r}")
        for name, s in strategies.items():
            if not isinstance(s, AbstractExploration):
                raise ValueError(f"ExploreRun.strategies[{name!r}] is not a strategy: {s!r}")
        check_range("ExploreRun", "budget", budget, ge=1, integer=True)
        check_range("ExploreRun", "batch", batch, ge=1, integer=True)
        check_range("ExploreRun", "scale", scale, gt=0.0)
        check_range("ExploreRun", "bins", bins, ge=1, integer=True)
        check_range("ExploreRun", "seed", seed, ge=0, le=MAX_SEED, integer=True)
        for s in strategies.values():  # e.g. IMGEP.initial <= budget, before any strategy runs
            s.random_draws(budget, min(batch, budget))
        try:
            found = default_descriptors() if descriptors is None else get_descriptors(descriptors)
        except ValueError as e:
            raise ValueError(f"ExploreRun.descriptors: {e}") from None
        self.descriptors = tuple(found)
        self.objective, self.strategies, self.seed = objective, dict(strategies), int(seed)
        self.budget, self.batch, self.scale, self.bins = budget, batch, scale, bins
        self.regulator = _drawn(regulator, jr.split(jr.key(self.seed))[0])
        objective.check_regulator(self.regulator)
        self.out = out and str(out)

    @property
    def folder(self) -> Path:
        label = f"explore-{tissue_label(self.objective)}-seed{self.seed}"
        return Path(self.out or Path("runs") / label)

    def execute(self, *, progress: bool = True, overwrite: bool = False, command=None, log=print):
        """Explore with every strategy and write the folder whole; the summary. On an
        interrupt the finished libraries are written (`explore.json` lists the rest
        as unfinished) and `KeyboardInterrupt` propagates."""
        from ._runs import write_exploration
        from .discovery import explore

        k_explore = jr.split(jr.key(self.seed))[1]  # the same first round for every strategy
        names, libraries = [d.name for d in self.descriptors], {}
        kw = dict(budget=self.budget, batch=self.batch, scale=self.scale, bins=self.bins)
        args = (self.objective, self.budget, self.bins, names, self.seed, command, self.config())
        with RunFolder(self.folder, overwrite) as folder:
            try:
                for m, strategy in self.strategies.items():
                    lib = explore(
                        self.objective, self.regulator, strategy, key=k_explore,
                        descriptors=self.descriptors, progress=progress, **kw,
                    )  # fmt: skip
                    libraries[m] = lib
                    log(f"explore: {m} done ({self.budget} simulations, "
                        f"{lib.coverage[-1][1]} bins)")  # fmt: skip
            except (KeyboardInterrupt, Exception) as e:  # keep the libraries that finished
                rest = [m for m in self.strategies if m not in libraries]
                stop = isinstance(e, KeyboardInterrupt)
                why = "interrupted" if stop else f"failed ({type(e).__name__}: {str(e)[:300]})"
                if not libraries:
                    if not stop:
                        raise
                    what = f"explore interrupted during {rest[0]}: nothing written"
                    raise Unfinished(what, True) from None
                write_exploration(folder.tmp, libraries, *args, unfinished=rest)
                folder.commit()
                kept = f"{', '.join(libraries)} librar{'y' if len(libraries) == 1 else 'ies'}"
                raise Unfinished(
                    f"explore {why} during {rest[0]}: kept the finished {kept} in "
                    f"{self.folder} (explore.json lists {', '.join(rest)} as unfinished)",
                    interrupted=stop,
                ) from (None if stop else e)
            summary = write_exploration(folder.tmp, libraries, *args)
            folder.commit()
        return summary
