"""One run, described by one object: what `train` consumes, what a run folder records
(`history.json`'s `run` and `run.json`), what `diffgrn rerun DIR` and
`diffgrn train --resume DIR` rebuild, and what `diffgrn train` builds from its flags
(`diffgrn train --config run.json` runs one from a file).

    run = diffgrn.Run(objective, diffgrn.MLPRegulator(key=jr.key(0)), diffgrn.CMAES(), seed=3)
    result = run.train()
    result, fresh = run.execute()             # and write its folder (runs/cmaes-open-seed3)
    diffgrn.Run.from_config(run.config())     # the same run
"""

import inspect
import json
import os
import shutil
from pathlib import Path

import equinox as eqx
import jax.random as jr

from ._runs import RunFolder, Unfinished, record, write_run
from ._validate import check_range
from .config import Configurable, decode, find_class
from .methods import AbstractMethod
from .objective import Objective
from .regulator import AbstractRegulator
from .tissue import Chain
from .train import TrainResult, train

__all__ = ["Run", "load_run"]


class Run(Configurable):
    """A whole training run: `objective`, the starting `regulator`, the `method`, the
    budget (`iterations`; `None`: the method's default), the `seed`, re-assessment
    (`reassess`, `reassess_repeats`: see `train`), checkpointing (`checkpoint_every`)
    and the output folder `out` (`None`: `runs/METHOD-TISSUE-seedS`).

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
    reassess: int | None = eqx.field(static=True)
    reassess_repeats: int = eqx.field(static=True)
    checkpoint_every: int | None = eqx.field(static=True)
    out: str | None = eqx.field(static=True)

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
    ):
        if not isinstance(objective, Objective):
            raise ValueError(f"Run.objective must be a diffgrn.Objective; got {objective!r}")
        if not isinstance(regulator, AbstractRegulator):
            raise ValueError(f"Run.regulator must be a diffgrn regulator; got {regulator!r}")
        if not isinstance(method, AbstractMethod):
            raise ValueError(f"Run.method must be a diffgrn method object; got {method!r}")
        check_range("Run", "seed", seed, ge=0, integer=True)
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
        with RunFolder(out, overwrite or resume) as folder:
            if self.checkpoint_every is not None and not resume:
                ckpt.mkdir(parents=True, exist_ok=True)
                (ckpt / "run.json").write_text(json.dumps(self.config(), indent=1))
            result = self.train(progress=progress, resume=resume)
            result.config["run"] = record(self.seed, command)
            try:
                fresh = write_run(
                    folder.tmp,
                    self.objective,
                    result,
                    self.seed,
                    self.method.name,
                    run=self.config(),
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
            shutil.rmtree(ckpt, ignore_errors=True)  # the run is whole: no need to resume
        return result, fresh


def interrupted(result: TrainResult) -> bool:
    return bool(result.error) and result.error.startswith("interrupted")


def load_run(path: "str | os.PathLike", flag: str = "load_run") -> Run:
    """The run a `run.json` or a run folder's `history.json` (its `run`) describes; a
    missing, truncated or wrong file is a ValueError naming it."""
    path = Path(path)
    if path.is_dir():
        path = next((p for p in (path / "run.json", path / "history.json") if p.is_file()), path)
    if not path.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{flag} {path} is not valid JSON (truncated?): {e}") from None
    if isinstance(config, dict) and "run" in config and "type" not in config:
        config = config["run"]  # a history.json
    if not isinstance(config, dict) or config.get("type") != "Run":
        raise ValueError(
            f"{flag} {path} does not describe a run (expected a run.json, or a history.json "
            f"written by diffgrn train, with {{'type': 'Run', ...}}); got "
            f"{_short(config)}"
        )
    try:
        return Run.from_config(config)
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
