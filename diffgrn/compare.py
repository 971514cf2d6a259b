"""Fair multi-seed comparison of training methods on one objective.

Every method gets, for each seed, the same initial regulator and the same training key;
results are judged on fresh noise (`assess`) with keys no run used.
"""

import dataclasses
import json
import math
import numbers
import os
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax.random as jr
from jaxtyping import PRNGKeyArray

from ._validate import check_key, check_range
from .methods import AbstractMethod, get_method
from .objective import Objective
from .regulator import AbstractRegulator, MLPRegulator
from .train import History, TrainResult, assess, bounds_95, train


@dataclasses.dataclass
class Comparison:
    """Runs per method (one per seed), their fresh-noise assessments, and the target.

    `seeds[name][i]` is the seed of `runs[name][i]` (default 0, 1, …): speed-ups pair
    runs by seed. `objective` is the config of the objective the runs trained on."""

    runs: dict[str, list[TrainResult]]
    fresh: dict[str, list[dict]]
    target: float | None
    seeds: dict[str, list[int]] | None = None
    objective: dict | None = None
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    """Folders `collect` found but did not tabulate (interrupted, unreadable), with why."""

    def seed_list(self, name: str) -> list[int]:
        if self.seeds is not None and name in self.seeds:
            return list(self.seeds[name])
        return list(range(len(self.runs[name])))

    def table(self) -> list[dict]:
        """One row per method: final fresh-noise utility (median, min, max over seeds),
        success rate, and the median wall time and simulated replicate-steps at which
        the run reached the target (over the seeds that did).

        A seed succeeds when its fresh-noise assessment is past the target with 95 %
        confidence: the lower 95 % bound of the mean over its fresh draws ≥ the target
        for a utility, the upper bound ≤ it for a loss (the rule of `reached`; the raw
        fresh mean counted a seed whose mean only grazed the target). The assessments
        need their per-draw `values` (at least 2; `assess` records them).

        A run reaches the target at its first re-assessment (`history.checks`, from
        `train(reassess=…)`) whose 95 % bound is past it (`reached`: the lower bound ≥
        the target for a utility, the upper bound ≤ it for a loss); runs without
        re-assessments fall back to the first monitored draw past the target (noisy: a
        lucky draw of 100 replicates counts)."""
        rows = []
        for name, runs in self.runs.items():
            finals = [f["mean"] for f in self.fresh[name]]
            row = dict(
                method=name,
                seeds=len(runs),
                fresh_median=statistics.median(finals),
                fresh_min=min(finals),
                fresh_max=max(finals),
            )
            if self.target is not None:
                hits = [reached(r.history, self.target) for r in runs]
                hits = [h for h in hits if h is not None]
                sign = runs[0].history.direction if runs else 1
                bounds = [
                    fresh_bound(f, sign, f"Comparison.table: {name} seed {seed}")
                    for f, seed in zip(self.fresh[name], self.seed_list(name))
                ]
                row.update(
                    success_rate=sum(sign * (b - self.target) >= 0 for b in bounds) / len(bounds),
                    reached_target=len(hits),
                    median_wall_time_to_target=(
                        statistics.median(h[0] for h in hits) if hits else math.nan
                    ),
                    median_replicate_steps_to_target=(
                        statistics.median(h[1] for h in hits) if hits else math.nan
                    ),
                )
            rows.append(row)
        return rows

    def speedups(self, baseline: str) -> list[dict]:
        """Per method and seed: how many times less wall time and fewer replicate-steps
        it needed than `baseline` to first reach the target, on the same seed
        (inf: only the method reached it; 0: only the baseline; NaN: neither)."""
        if self.target is None:
            raise ValueError("Comparison.speedups needs a target")
        if baseline not in self.runs:
            raise ValueError(
                f"Comparison.speedups: unknown baseline {baseline!r}; "
                f"expected one of {', '.join(self.runs)}"
            )
        ratio = lambda b, m: (
            math.nan
            if b is None and m is None
            else math.inf
            if b is None
            else 0.0
            if m is None
            else b / m
            if m > 0
            else math.inf
        )
        rows = []
        for name, runs in self.runs.items():
            if name == baseline:
                continue
            wall, steps = [], []
            base_by_seed = dict(zip(self.seed_list(baseline), self.runs[baseline]))
            by_seed = dict(zip(self.seed_list(name), runs))
            common = sorted(set(base_by_seed) & set(by_seed))
            for base_run, run in ((base_by_seed[k], by_seed[k]) for k in common):
                b = reached(base_run.history, self.target)
                m = reached(run.history, self.target)
                wall.append(ratio(b and b[0], m and m[0]))
                steps.append(ratio(b and b[1], m and m[1]))
            rows.append(
                dict(
                    method=name,
                    baseline=baseline,
                    seeds=common,
                    wall_time_ratio=wall,
                    replicate_steps_ratio=steps,
                    seeds_at_least_5x_both=sum(w >= 5 and n >= 5 for w, n in zip(wall, steps)),
                )
            )
        return rows

    @classmethod
    def collect(cls, folder: str | os.PathLike, target: float | None = None) -> "Comparison":
        """Rebuild a comparison from the run folders `METHOD-seedK/history.json` that
        `diffgrn compare` writes (so seeds can run in separate processes or machines
        and be tabulated together). Regulators are not loaded (`None`).

        A folder that is not a finished run is left out and listed in `skipped` with
        the reason (an interrupted run, a folder name that is not METHOD-seedK, a
        missing, truncated or incomplete `history.json`, a run never assessed); the
        rest are tabulated. Runs trained on another objective are an error."""
        runs: dict[str, list] = {}
        fresh: dict[str, list] = {}
        seeds: dict[str, list] = {}
        skipped: dict[str, str] = {}
        objective, first = None, None
        found = []
        for path in sorted(Path(folder).glob("*-seed*")):
            if not path.is_dir() or path.name.startswith("."):
                continue
            m = re.fullmatch(r"(.+)-seed(\d+)", path.name)
            if m is None:
                skipped[path.name] = "not a METHOD-seedK folder (K a number)"
            elif not (path / "history.json").is_file():
                skipped[path.name] = "no history.json"
            else:
                found.append((m.group(1), int(m.group(2)), path / "history.json"))
        found.sort(key=lambda f: (f[0], f[1]))
        for name, seed, path in found:
            try:
                summary = _finished(path)
            except ValueError as e:
                skipped[path.parent.name] = str(e)
                continue
            config = summary["config"].get("objective")
            if objective is None:
                objective, first = config, path.parent.name
            elif config != objective:
                raise ValueError(
                    f"compare --collect: {path.parent.name} was trained on another objective "
                    f"than {first}; tabulate runs of one setup only"
                )
            seeds.setdefault(name, []).append(seed)
            runs.setdefault(name, []).append(
                TrainResult(
                    None,
                    None,
                    summary["best_utility"],
                    summary["best_iteration"],
                    summary["config"],
                    History.from_dict(summary["history"]),
                    summary["compile_time"],
                    summary["error"],
                )
            )
            fresh.setdefault(name, []).append(summary["fresh_noise"])
        if not runs:
            why = "".join(f"; {k}: {v}" for k, v in skipped.items())
            raise ValueError(
                f"compare --collect: no finished METHOD-seedK/history.json under {folder}{why}"
            )
        return cls(runs, fresh, target, seeds, objective, skipped)

    def _judged(self) -> set[bool]:
        """Whether each run has re-assessments ({True}: all; {False}: none)."""
        return {bool(r.history.checks) for runs in self.runs.values() for r in runs}

    def merge(self, other: "Comparison", rename: Mapping[str, str] | None = None) -> "Comparison":
        """This comparison with `other`'s methods added (renamed by `rename`, e.g.
        `{"adam": "adam, h = 2"}`), for tables across folders. Both must score runs
        with the same hard objective: the soft readout and the bandwidth may differ
        (they shape only gradient estimators' surrogates), nothing else."""
        rename = dict(rename or {})
        hard = lambda cfg: {
            k: v for k, v in (cfg or {}).items() if k not in ("readout", "bandwidth")
        }
        if self.objective is not None and other.objective is not None:
            if hard(self.objective) != hard(other.objective):
                raise ValueError(
                    "Comparison.merge: the runs were judged on different hard objectives"
                )
        if len(self._judged() | other._judged()) > 1:
            raise ValueError(
                "Comparison.merge: some runs have re-assessments and some do not, so "
                "their times to target are judged differently; re-run with the same --reassess"
            )
        if self.target != other.target:
            raise ValueError(f"Comparison.merge: targets differ ({self.target} and {other.target})")
        runs, fresh, seeds = (
            dict(self.runs),
            dict(self.fresh),
            {n: self.seed_list(n) for n in self.runs},
        )
        for name in other.runs:
            label = rename.get(name, name)
            if label in runs:
                raise ValueError(f"Comparison.merge: {label!r} is in both; rename it")
            runs[label], fresh[label] = other.runs[name], other.fresh[name]
            seeds[label] = other.seed_list(name)
        skipped = {**self.skipped, **{f"{k} (merged)": v for k, v in other.skipped.items()}}
        return Comparison(runs, fresh, self.target, seeds, self.objective, skipped)

    def to_markdown(self, baseline: str | None = None) -> str:
        """The table; with a target and a `baseline` method, also the per-seed
        speed-ups to the target against it."""
        text = _markdown(self.table())
        loss = any(r.history.direction == -1 for runs in self.runs.values() for r in runs)
        bound, past, what = ("upper", "≤", "L") if loss else ("lower", "≥", "U")
        if self.target is not None:
            text += (
                "\n\nReached: the first re-assessment of the candidate on fresh draws whose "
                f"mean's {bound} 95 % bound is {past} the target."
                if self._judged() == {True}
                else f"\n\nReached: the first monitored single draw {past} the target "
                "(runs without re-assessments; noise can carry a draw across)."
            ) + (
                f" Success: a seed whose fresh-noise assessment's {bound} 95 % bound is "
                f"{past} the target."
            )
        if baseline is not None and self.target is not None and baseline in self.runs:
            rows = [
                dict(
                    r,
                    wall_time_ratio=_fmt_list(r["wall_time_ratio"]),
                    replicate_steps_ratio=_fmt_list(r["replicate_steps_ratio"]),
                )
                for r in self.speedups(baseline)
            ]
            if rows:
                text += (
                    f"\n\nSpeed-up to {what} {past} {self.target} against {baseline}, per "
                    "seed (baseline's wall time or replicate-steps ÷ the method's):"
                    "\n\n" + _markdown(rows)
                )
        stopped = [
            f"- {name} seed {seed}: {run.error}"
            for name, runs in self.runs.items()
            for seed, run in zip(self.seed_list(name), runs)
            if run.error
        ]
        if stopped:
            text += "\n\nTabulated, but stopped early:\n\n" + "\n".join(stopped)
        if self.skipped:
            text += f"\n\nNot tabulated ({len(self.skipped)} folder(s)):\n\n" + "\n".join(
                f"- {name}: {why}" for name, why in self.skipped.items()
            )
        return text


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _fmt_list(values) -> str:
    return ", ".join(_fmt(float(v)) for v in values)


def _markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def fresh_bound(fresh: Mapping, direction: int, what: str = "fresh_bound") -> float:
    """The 95 % bound on the far side of a fresh-noise assessment's mean (the lower for
    a utility, `direction` +1; the upper for a loss, −1), from its per-draw `values`
    (`train.bounds_95`, as the re-assessments); NaN when a draw is not finite."""
    values = fresh.get("values") if isinstance(fresh, Mapping) else None
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        raise ValueError(
            f"{what}: the fresh-noise assessment holds no per-draw 'values' (at least 2; "
            "the success rate bounds their mean)"
        )
    values = [math.nan if v is None else v for v in values]  # JSON writes NaN as null
    if not all(math.isfinite(v) for v in values):
        return math.nan
    _, _, lower, upper = bounds_95(values)
    return lower if direction == 1 else upper


SUMMARY_FIELDS = ("history", "best_utility", "best_iteration", "config", "compile_time", "error")


def _finished(path: Path) -> dict:
    """A finished run's `history.json`; a ValueError saying why it is not one."""
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path.name} is not valid JSON (truncated?): {e}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path.name} is not a run summary (a JSON object)")
    missing = [k for k in SUMMARY_FIELDS if k not in summary]
    if missing:
        raise ValueError(f"{path.name} lacks {', '.join(map(repr, missing))}")
    error = summary["error"] or ""
    if error.startswith("interrupted"):
        raise ValueError(f"interrupted, not a finished run ({error})")
    fresh = summary.get("fresh_noise")
    if not isinstance(fresh, dict) or not isinstance(fresh.get("mean"), (int, float)):
        raise ValueError(f"{path.name} has no fresh-noise assessment ({error or 'none recorded'})")
    values = fresh.get("values")
    if (
        not isinstance(values, list)
        or len(values) < 2
        or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values
        )
    ):
        raise ValueError(
            f"{path.name}: its fresh-noise assessment lacks the per-draw 'values' (a list "
            "of at least 2 numbers)"
        )
    if not isinstance(summary["config"], dict):
        raise ValueError(f"{path.name}: 'config' is not a mapping")
    try:
        History.from_dict(summary["history"])
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{path.name}: 'history' is malformed ({e})") from None
    return summary


def reached(
    history: History, target: float, direction: int | None = None
) -> tuple[float, float] | None:
    """(wall time, replicate-steps) at which a run reached `target`, or None: the first
    re-assessment whose 95 % bound on the far side is past the target — the lower
    bound ≥ target for a utility (`direction` +1), the upper bound ≤ target for a loss
    (−1, e.g. `TrajectoryFit`) — where `history.checks` exist, else the first
    monitored draw past it. `direction` defaults to the history's."""
    direction = history.direction if direction is None else direction
    if direction not in (1, -1):
        raise ValueError(f"reached: direction must be 1 or -1; got {direction!r}")
    if history.checks:
        for c in history.checks:
            bound = c["lower"] if direction == 1 else c.get("upper", math.nan)
            if direction * (bound - target) >= 0:
                return c["wall_time"], c["replicate_steps"]
        return None
    for u, t, n in zip(history.hard_utility, history.wall_time, history.replicate_steps):
        if direction * (u - target) >= 0:
            return t, n
    return None


def check_target(target: float | None, objective: Objective) -> None:
    """A target must be reachable: 0 < target ≤ the utility's largest value (log₂ K
    bits per cell for U; a loss's is inf, and the target must be finite)."""
    if target is None:
        return
    check_range("compare", "target", target, gt=0.0, le=objective.utility.upper(objective.n_fates))


def compare(
    objective: Objective,
    methods: Mapping[str, "str | AbstractMethod"],
    *,
    key: PRNGKeyArray,
    seeds: "int | Sequence[int]" = 5,
    iterations: "int | Mapping[str, int] | None" = None,
    target: float | None = None,
    make_regulator: Callable[[PRNGKeyArray], AbstractRegulator] | None = None,
    assess_repeats: int = 10,
    progress: bool = True,
    on_run: Callable[[str, int, TrainResult, dict], None] | None = None,
    reassess: int | None = 20,
    reassess_repeats: int = 10,
) -> Comparison:
    """Train every method from the same `seeds` starting points and assess each result.

    `seeds` is a count (seeds 0…n−1) or a list of seed indices (to split a comparison
    over processes; see `Comparison.collect`). `iterations` is one number or a
    per-method mapping (default: each method's own).
    `make_regulator(key)` builds the initial regulator (default `MLPRegulator`).
    `on_run(name, seed, result, fresh)` runs after each training (e.g. to save it);
    when the assessment fails or is interrupted it runs with `fresh=None` (the
    result's `error` says why), then the error propagates.
    `reassess`/`reassess_repeats` go to `train`: the re-assessments on which
    reaching the target is judged (`Comparison.table`); `None` judges on single draws.
    """
    check_key("compare", "key", key)
    seed_list = _seed_list(seeds)
    if not isinstance(objective, Objective):
        raise ValueError(
            f"compare.objective must be a diffgrn.Objective; got {type(objective).__name__}"
        )
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError(
            "compare.methods must be a non-empty mapping of names to methods, e.g. "
            f"{{'es': 'es', 'adam': 'adam'}}; got {methods!r}"
        )
    check_target(target, objective)
    # every setting of every method checked here, before the first method trains
    resolved = {name: _method(name, m) for name, m in methods.items()}
    n_iter = _iterations(iterations, resolved)
    check_range("compare", "assess_repeats", assess_repeats, ge=2, integer=True)
    if reassess is not None:
        check_range("compare", "reassess", reassess, ge=1, integer=True)
        check_range("compare", "reassess_repeats", reassess_repeats, ge=2, integer=True)
    for field, f in (("make_regulator", make_regulator), ("on_run", on_run)):
        if f is not None and not callable(f):
            raise ValueError(f"compare.{field} must be a function or None; got {f!r}"[:200])
    make = make_regulator or (lambda k: MLPRegulator(key=k))
    runs = {name: [] for name in resolved}
    fresh = {name: [] for name in resolved}
    for seed in seed_list:
        k_seed = jr.fold_in(key, seed)
        k_init, k_train, k_assess = jr.split(k_seed, 3)
        regulator = make(k_init)
        for name, method in resolved.items():
            res = train(
                objective,
                regulator,
                method,
                key=k_train,
                iterations=n_iter[name],
                progress=progress,
                reassess=reassess,
                reassess_repeats=reassess_repeats,
            )
            try:
                f = assess(objective, res.best_regulator, key=k_assess, repeats=assess_repeats)
            except (KeyboardInterrupt, ValueError, RuntimeError, MemoryError) as e:
                if on_run is not None:  # the trained result first: on_run(…, None) saves it
                    why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"failed ({e})"
                    res.error = "; ".join(filter(None, [res.error, f"assessment {why}"]))
                    on_run(name, seed, res, None)
                raise
            runs[name].append(res)
            fresh[name].append(f)
            if on_run is not None:
                on_run(name, seed, res, f)
    seeds_by_method = {name: list(seed_list) for name in resolved}
    return Comparison(runs, fresh, target, seeds_by_method, objective.config())


def _seed_list(seeds) -> list[int]:
    """The seeds `compare.seeds` names: a count n (0…n−1) or a list of distinct indices."""
    integer = lambda s: isinstance(s, numbers.Integral) and not isinstance(s, bool)
    if integer(seeds):
        seed_list = list(range(int(seeds)))
    elif isinstance(seeds, Sequence) and not isinstance(seeds, str):
        seed_list = [int(s) if integer(s) else s for s in seeds]
    else:
        seed_list = None
    if not seed_list or any(not integer(s) or s < 0 for s in seed_list):
        raise ValueError(
            "compare.seeds must be an integer >= 1 or a non-empty list of "
            f"integers >= 0; got {seeds!r}"
        )
    repeated = sorted({s for s in seed_list if seed_list.count(s) > 1})
    if repeated:
        raise ValueError(
            f"compare.seeds repeats seed {repeated[0]}: each seed is one run per method; "
            f"list each once (got {list(seed_list)})"
        )
    return seed_list


def _method(name: str, method) -> AbstractMethod:
    """`get_method(method)`, its error naming the entry of `compare.methods`."""
    try:
        return get_method(method)
    except ValueError as e:
        text = str(e)
        if text.startswith("train.method "):
            text = text.removeprefix("train.method ")
        raise ValueError(f"compare.methods[{name!r}]: {text}") from None


def _iterations(iterations, methods: dict[str, AbstractMethod]) -> dict[str, int]:
    """Each method's iterations (`compare.iterations`: one number, a mapping by method
    name, or None: each method's default), checked."""
    if isinstance(iterations, Mapping):
        unknown = [k for k in iterations if k not in methods]
        if unknown:
            raise ValueError(
                f"compare.iterations names {', '.join(map(repr, unknown))}, not a compared "
                f"method; expected names among {', '.join(map(repr, methods))}"
            )
        given = {name: (iterations.get(name), f"iterations[{name!r}]") for name in methods}
    else:
        given = {name: (iterations, "iterations") for name in methods}
    out = {}
    for name, (n, field) in given.items():
        n = methods[name].default_iterations if n is None else n
        check_range("compare", field, n, ge=1, integer=True)
        try:
            methods[name].check_iterations(n)
        except ValueError as e:
            raise ValueError(f"compare.{field} ({name}): {e}") from None
        out[name] = n
    return out


def collect_merged(
    folder: "str | os.PathLike", target: float | None, merge: Mapping[str, Path] | None = None
) -> Comparison:
    """`Comparison.collect(folder)` with the runs of other folders (one method each)
    added under labels (`merge`: label → folder), as `diffgrn compare --collect --merge`."""
    if not Path(folder).is_dir():
        raise ValueError(f"compare --collect: {folder} is not a folder of runs")
    comparison = Comparison.collect(folder, target)
    seen = {Path(folder).resolve(): "the --out folder"}
    for label, other_folder in (merge or {}).items():
        where = Path(other_folder).resolve()
        if where in seen:
            raise ValueError(
                f"compare --merge {label}={other_folder}: that folder is {seen[where]} "
                "already tabulated; its runs would be listed twice"
            )
        seen[where] = f"merged as {label!r}"
        other = Comparison.collect(other_folder, target)
        if len(other.runs) != 1:
            raise ValueError(
                f"compare --merge: {other_folder} holds {len(other.runs)} methods; give "
                "folders of one method each"
            )
        comparison = comparison.merge(other, {next(iter(other.runs)): label})
    return comparison
