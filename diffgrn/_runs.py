"""Run folders a researcher can trust: validated before any compute, written whole
(a temporary folder renamed into place), one run at a time, with the record needed to
reproduce them (seed, command line, package versions); and what the folders of
`diffgrn train`, `compare` and `explore` hold (`write_run`, `write_comparison`,
`write_exploration`) and the summaries the command prints (`report`)."""

import contextlib
import importlib.metadata
import json
import math
import os
import shutil
import sys
from pathlib import Path

from ._interrupt import held
from ._version import __version__

PACKAGES = ("diffgrn", "jax", "jaxlib", "equinox", "diffrax", "optax")
MAX_SEED = 2**30 - 1
"""The largest seed of a run: its fresh-noise key, `2**31 - 1 - seed`, is then never
the key of another allowed seed (and fits an int32)."""
RECORDS = ("history.json", "run.json", "compare.json", "explore.json")
"""Files that mark a folder as diffgrn's: only such a folder is replaced by --overwrite."""


def versions() -> dict:
    """Installed versions of diffgrn and the libraries its numbers depend on."""
    out = {"diffgrn": __version__}
    for name in PACKAGES[1:]:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = sys.version.split()[0]
    return out


def check_out(target: Path, overwrite: bool, flag: str = "--out", own: bool = True) -> None:
    """Raise ValueError unless `target` can become a run folder: not a file, no file
    above it, in a writable place, and (unless `overwrite`) not an existing non-empty
    folder; with `overwrite` (and `own`: the folder is replaced whole), a non-empty
    folder only if diffgrn wrote it (it holds one of `RECORDS`)."""
    if str(target) in ("", "."):
        raise ValueError(f"{flag} must name a folder for the run; got {str(target)!r}")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {target} is an existing file, not a folder")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {target}: {parent} is a file, so no folder can go below it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {target}: {parent} is not writable")
    held = set(target.iterdir()) - set(leftovers(target)) if target.is_dir() else set()
    if held and not overwrite:
        raise ValueError(
            f"{flag} {target} already holds files (an earlier run?); choose another "
            "folder or pass --overwrite to replace it"
        )
    if overwrite and own and held:
        if not any((target / name).is_file() for name in RECORDS):
            raise ValueError(
                f"{flag} {target} holds files diffgrn did not write (none of "
                f"{', '.join(RECORDS)}): --overwrite replaces only a diffgrn folder; "
                "choose another folder"
            )


class RunFolder(contextlib.AbstractContextManager):
    """Write a run into `self.tmp` (beside `target`), then `commit()` renames it into
    place, replacing an old `target` whole. A lock file beside `target` refuses a second
    concurrent run into it; leaving the block without `commit()` removes the temporary
    folder and leaves `target` untouched."""

    def __init__(self, target: Path, overwrite: bool = False, flag: str = "--out"):
        check_out(target, overwrite, flag)
        self.target, self.flag = target, flag
        name = target.name
        self.lock = target.parent / f".{name}.lock"
        self.tmp = target.parent / f".{name}.tmp-{os.getpid()}"
        self.committed = False
        self.locked = False

    def __enter__(self):
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        with held():  # rmtree cut by a Ctrl-C can close a descriptor twice
            for debris in leftovers(self.target.parent, self.target.name):  # a killed run's
                if debris != self.lock:
                    shutil.rmtree(debris, ignore_errors=True)
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        return self

    def _acquire(self):
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if _stale(self.lock):
                    self.lock.unlink(missing_ok=True)
                    continue
                raise ValueError(
                    f"{self.flag} {self.target}: another run is writing there (lock file "
                    f"{self.lock}; delete it if no diffgrn process is running)"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.locked = True
            return
        raise ValueError(f"{self.flag} {self.target}: could not take the lock {self.lock}")

    def commit(self) -> Path:
        with held():  # a Ctrl-C meanwhile is delivered once the folder is in place
            old = None
            if self.target.exists():
                old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
                os.replace(self.target, old)
            try:
                os.replace(self.tmp, self.target)
            except BaseException:
                if old is not None:  # put the old folder back: never leave neither
                    os.replace(old, self.target)
                raise
            self.committed = True
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return self.target

    def __exit__(self, *exc):
        with held():  # a second Ctrl-C waits for the cleanup
            if not self.committed and self.tmp.exists():
                shutil.rmtree(self.tmp, ignore_errors=True)
            if self.locked:
                self.lock.unlink(missing_ok=True)
        return False


def _gone(pid: int) -> bool:
    """No process `pid` runs (one killed without cleaning up)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _stale(lock: Path) -> bool:
    """A lock whose process is gone."""
    try:
        return _gone(int(lock.read_text().strip() or "0"))
    except (OSError, ValueError):
        return False


def leftovers(folder: Path, name: str | None = None) -> list[Path]:
    """What killed diffgrn runs left in `folder` (for the run folder `name`, or any): lock
    files (`.NAME.lock`) and temporary folders (`.NAME.tmp-PID`) whose process is gone."""
    found = []
    for p in folder.iterdir() if folder.is_dir() else ():
        stem, tmp, pid = p.name[1:].rpartition(".tmp-")
        if not p.name.startswith("."):
            continue
        if p.name.endswith(".lock"):
            if name in (None, p.name[1 : -len(".lock")]) and _stale(p):
                found.append(p)
        elif tmp and pid.isdigit() and name in (None, stem) and p.is_dir() and _gone(int(pid)):
            found.append(p)
    return found


def record(seed: int, command: list[str] | None) -> dict:
    """What reproduces a run besides its description: seed, command line, versions."""
    return dict(seed=seed, command=["diffgrn", *(command or [])], versions=versions())


def describe(objective) -> str:
    """`7-cell open chain`, `10x10 hex pinned`: the tissue, in titles and summaries."""
    from .tissue import Chain

    t, c = objective.tissue, objective.tissue.config()
    if isinstance(t, Chain):
        return f"{t.n_cells}-cell {c['boundary']} chain"
    if "rows" in c:
        return f"{c['rows']}x{c['cols']} {c.get('geometry', '')} {c.get('boundary', '')}"
    return f"{t.n_cells}-cell graph"


class Unfinished(RuntimeError):
    """Training finished and its result (regulators, history) was written, but what
    follows it (the fresh-noise assessment, the figures) was interrupted
    (`interrupted`) or failed."""

    def __init__(self, message: str, interrupted: bool = False):
        super().__init__(message)
        self.interrupted = interrupted


def write_run(
    out: Path, objective, result, seed: int, name: str, fresh=None, run=None, assess=True
) -> dict:
    """Save a training run into `out`: `best/` and `final/` (regulator + config),
    `history.json` (the fresh-noise result, the history, the config and, given `run`,
    the run description, also written alone as `run.json`), `training_curve.png`,
    `regulator.png`, `patterns.png`, `kymograph.png` (and `fate_map.png` on a lattice).
    Returns the fresh-noise assessment (`fresh`, or a new one). The regulators and
    `history.json` are written before the assessment: when it is interrupted or fails,
    `Unfinished` is raised with them in `out` (`history.json` says why). `assess=False`
    writes only those (the caller could not assess it; `result.error` says why) and
    raises `Unfinished`."""
    import jax.random as jr

    from .io import dumps, save
    from .train import assess as assess_run

    out.mkdir(parents=True, exist_ok=True)
    save(out / "best", result.best_regulator, result.config, result.history)
    save(out / "final", result.final_regulator, result.config, result.history)
    summary = dict(
        result=None,
        best_utility=result.best_utility,
        selection=result.selection,
        best_iteration=result.best_iteration,
        fresh_noise=None,
        compile_time=result.compile_time,
        error=result.error,
        config=result.config,
        history=result.history.to_dict(),
    )
    if run is not None:
        summary["run"] = run
        (out / "run.json").write_text(dumps(run))
    (out / "history.json").write_text(dumps(summary))  # the trained result, before assessing
    if fresh is None and not assess:
        raise Unfinished(result.error or "not assessed", "interrupted" in (result.error or ""))
    if fresh is None:  # fresh noise: keys from a stream that training never uses
        try:
            fresh = assess_run(objective, result.best_regulator, key=jr.key(2**31 - 1 - seed))
        except BaseException as e:
            if not isinstance(e, (KeyboardInterrupt, ValueError, RuntimeError, MemoryError)):
                raise
            stop = isinstance(e, KeyboardInterrupt)
            why = "interrupted" if stop else f"failed ({type(e).__name__}: {str(e)[:300]})"
            summary["error"] = "; ".join(filter(None, [result.error, f"assessment {why}"]))
            (out / "history.json").write_text(dumps(summary))
            raise Unfinished(f"the fresh-noise assessment {why}", stop) from e
    summary.update(
        result=dict(  # the run's one reported number: fresh-noise hard U of the best regulator
            hard_utility=fresh["mean"],
            standard_error=fresh["std"] / math.sqrt(fresh["repeats"]),
            repeats=fresh["repeats"],
            replicates=fresh["replicates"],
        ),
        fresh_noise=fresh,
    )
    (out / "history.json").write_text(dumps(summary))
    try:
        _figures(out, objective, result, fresh, seed, name)
    except (KeyboardInterrupt, Exception) as e:  # the result is written: keep it
        if isinstance(e, OSError):  # a write failed (a full disk): nothing replaces the old
            raise
        if isinstance(e, KeyboardInterrupt):
            raise Unfinished("interrupted while drawing the figures", True) from None
        raise Unfinished(f"drawing the figures failed ({type(e).__name__}: {e})") from e
    return fresh


def _figures(out: Path, objective, result, fresh: dict, seed: int, name: str) -> None:
    """`write_run`'s figures (after the result is written)."""
    import equinox as eqx
    import jax.random as jr

    from . import plotting
    from .readout import HardReadout
    from .tissue import Chain
    from .utility import TargetPattern

    title = f"{name}, {describe(objective)}, seed {seed}"
    parts = ("agreement", "exact hits") if isinstance(objective.utility, TargetPattern) else None
    plotting.save_figure(
        plotting.plot_run(result, fresh, title, parts=parts), out / "training_curve.png"
    )
    plotting.save_figure(
        plotting.plot_regulator(result.best_regulator),
        out / "regulator.png",
        f"best regulator: {title}",
    )
    if not len(result.history):
        return
    key = jr.key(10_000 + seed)
    states = eqx.filter_jit(objective.simulate)(result.best_regulator, key)
    fates = objective.fates(states, HardReadout())
    u = float(objective.utility.hard(fates).value)
    plotting.save_figure(
        plotting.plot_patterns(fates),
        out / "patterns.png",
        f"{title}: fates of {objective.replicates} replicates on one fresh draw "
        f"(U = {u:.3f} on this draw; the run's reported U, the mean of "
        f"{fresh['repeats']} draws, is {fresh['mean']:.3f})",
    )
    if not isinstance(objective.tissue, Chain):
        fig = plotting.plot_tissue_fates(objective.tissue, fates, n_fates=objective.n_fates)
        fig.suptitle(f"fate maps on fresh noise (U = {u:.3f})", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "fate_map.png", dpi=110)
        plotting.plt.close(fig)
    every = max(1, objective.dynamics.n_steps // 200)
    traj = eqx.filter_jit(objective.simulate)(
        result.best_regulator, key, replicates=2, save_every=every
    )
    gene = objective.fate_genes[0]
    plotting.save_figure(
        plotting.plot_kymograph(traj[0], objective.dynamics.dt * every, gene=gene),
        out / "kymograph.png",
        f"one replicate, gene {gene}",
    )


def report(name: str, label: str, seed: int, out: Path, objective, result, fresh) -> str:
    """The summary `diffgrn train` prints: the fresh-noise result, its parts, the
    time-step check and, where it applies, the S_rep bound."""
    from .assessment import bound_note
    from .utility import TargetPattern

    h = result.history
    sem = fresh["std"] / math.sqrt(fresh["repeats"])
    lines = [
        f"{name} ({label}, seed {seed}): hard U = {fresh['mean']:.4f} ± {sem:.4f} (mean ± "
        f"s.e. on fresh noise, {fresh['repeats']} × {fresh['replicates']} replicates) for "
        f"the best regulator ({_which(result.best_iteration)}); {len(h)} iterations, "
        f"{h.wall_time[-1] if len(h) else 0:.1f} s inside the method's compiled steps "
        f"(the progress's elapsed time also counts compiling, {result.compile_time:.1f} s, "
        f"and each iteration's monitoring draw; the fresh-noise assessment, the dt/5 check "
        f"and the figures come after it); written to {out}"
    ]
    if isinstance(objective.utility, TargetPattern):
        lines.append(
            f"  toward {objective.utility.pattern}: mean per-cell agreement "
            f"{fresh['agreement']:.4f}, exact hits {fresh['exact_hits']:.4f} of replicates "
            f"(U = the {objective.utility.score})"
        )
    elif "s_pat" in fresh:
        lines.append(
            f"  S_pat = {fresh['s_pat']:.4f}, S_rep = {fresh['s_rep']:.4f} bits per cell "
            f"(U = S_pat - S_rep <= log2 K = {math.log2(objective.n_fates):g})"
        )
    elif h.direction == -1:
        lines.append(f"  {type(objective.utility).__name__}: a loss, lower is better")
    if len(h):
        best = (max if h.direction == 1 else min)(h.hard_utility)
        others = [f"best single draw in training {best:.4f} (progress best_draw)"]
        if result.selection:
            others.append(
                f"the selection's re-assessment {result.best_utility:.4f} (best_utility: "
                f"{result.selection['repeats']} draws per candidate, the best mean of "
                f"{len(result.selection['iterations'])})"
            )
        bias = "upward (maxima" if h.direction == 1 else "downward (minima"
        lines.append(f"  not the result, and biased {bias} over noisy draws): " + "; ".join(others))
    res = fresh.get("resolution") or {}
    if "mean_fine" in res:
        lines.append(
            f"  resolution (other draws): U = {res['mean_dt']:.4f} at dt = {res['dt']:g} and "
            f"{res['mean_fine']:.4f} at dt/{res['refine']} on the same noise; dt·max|f'| "
            f"over visited states = {res['stiffness_visited']:.3g}"
            + ("  <- ARTEFACT of the time step" if res["artefact"] else " (resolved)")
        )
    note = bound_note(objective.replicates, objective.n_cells)
    if note is not None and "s_pat" in fresh and not isinstance(objective.utility, TargetPattern):
        lines.append(f"  note: {note} (fate_map.png)")
    return "\n".join(lines)


def write_comparison(
    out: Path, comparison, objective, target, baseline, command, description=None
) -> str:
    """`compare.md`, `compare.json` and `compare.png` of a comparison; the table.
    `baseline` None: es if compared, else cmaes, else none."""
    from . import plotting
    from .io import dumps, write_text

    names = list(comparison.runs)
    baseline = baseline or next((b for b in ("es", "cmaes") if b in comparison.runs), None)
    if baseline is not None and baseline not in comparison.runs:
        raise ValueError(
            f"compare --baseline {baseline!r} is not among the compared methods "
            f"({', '.join(comparison.runs)})"
        )
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plotting.plt.subplots(1, 2, figsize=(11, 4))
    plotting.plot_comparison(comparison, "wall_time", axes[0])
    plotting.plot_comparison(comparison, "replicate_steps", axes[1])
    seeds = max(len(r) for r in comparison.runs.values())
    plotting.save_figure(
        axes[0],
        out / "compare.png",
        f"{' vs '.join(names) if len(names) <= 4 else f'{len(names)} methods'}, "
        f"{seeds} seed(s), same objective",
    )
    table = comparison.to_markdown(baseline)
    write_text(out / "compare.md", table + "\n")  # whole: the folder holds finished runs
    speedups = comparison.speedups(baseline) if baseline and target is not None else None
    summary = dict(
        table=comparison.table(),
        fresh=comparison.fresh,
        target=target,
        speedups=speedups,
        config=comparison.objective or objective.config(),
        run=dict(command=["diffgrn", *(command or [])], versions=versions()),
    )
    if description is not None:  # the CompareRun that rebuilds it (`diffgrn rerun`)
        summary["description"] = description
    write_text(out / "compare.json", dumps(summary))
    return table


def write_exploration(
    folder: Path,
    libraries: dict,
    objective,
    budget,
    bins,
    names,
    seed,
    command,
    description=None,
    unfinished=(),
) -> dict:
    """Each method's library (with `descriptors.png`, `gallery.png`), `coverage.png`
    and `explore.json` of an exploration; the summary. `unfinished`: methods an
    interrupt stopped (no library; `explore.json` lists them)."""
    from . import plotting
    from .io import dumps

    for method, lib in libraries.items():
        lib.config["run"] = record(seed, command)
        lib.save(folder / method)
        title = f"{method}, {describe(objective)}, {budget} simulations"
        plotting.plot_descriptor_space(lib, title).savefig(
            folder / method / "descriptors.png", dpi=110
        )
        fig = plotting.plot_gallery(lib, objective.tissue, n_fates=objective.n_fates)
        fig.savefig(folder / method / "gallery.png", dpi=110)
        plotting.plt.close("all")
    plotting.save_figure(
        plotting.plot_coverage(libraries),
        folder / "coverage.png",
        f"{describe(objective)}: occupied bins of ({', '.join(names)})",
    )
    summary = dict(
        budget=budget,
        bins_per_descriptor=bins,
        descriptors=names,
        filled={m: lib.coverage[-1][1] for m, lib in libraries.items()},
        coverage={m: lib.coverage for m, lib in libraries.items()},
        config=objective.config(),
        run=record(seed, command),
    )
    if description is not None:  # the ExploreRun that rebuilds it (`diffgrn rerun`)
        summary["description"] = description
    if unfinished:
        summary["unfinished"] = list(unfinished)
    (folder / "explore.json").write_text(dumps(summary))
    return summary


RENAMED = {  # choices renamed in 0.5 (derived from class names), for older folders
    ("--constraint", "softclip"): "soft-clip",
    ("--constraint", "none"): "unconstrained",
    ("--noise", "tree"): "virtual-tree",
    ("--pattern-score", "hit"): "exact-hits",
}


def recorded(folder: Path) -> "tuple[Path, list[str] | None]":
    """A run folder's record (its history.json, compare.json or explore.json), and the
    `diffgrn …` command it records if it was written before diffgrn 0.5 (None: the
    record holds a run description, for `load_run`); ValueErrors name the file."""
    if not folder.is_dir():
        raise ValueError(f"rerun: {folder} is not a folder (no such folder, or a file)")
    found = [folder / n for n in ("history.json", "compare.json", "explore.json")]
    found = [p for p in found if p.is_file()]
    if not found:
        raise ValueError(f"rerun: {folder} holds no history.json, compare.json or explore.json")
    try:
        rec = json.loads(found[0].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"rerun: {found[0]} is not valid JSON (truncated?): {e}") from None
    if not isinstance(rec, dict):
        raise ValueError(f"rerun: {found[0]} is not a run record (a JSON object)")
    described = rec.get("description") or rec.get("run")
    if isinstance(described, dict) and "type" in described:
        return found[0], None
    config = rec.get("config") if isinstance(rec.get("config"), dict) else {}
    entry = config.get("run") or rec.get("run") or {}
    command = entry.get("command") if isinstance(entry, dict) else None
    if not (isinstance(command, list) and all(isinstance(a, str) for a in command)):
        raise ValueError(f"rerun: {folder} has no recorded command (written before diffgrn 0.3?)")
    if command[1:2] == ["compare"] and found[0].name == "history.json":
        raise ValueError(f"rerun: {folder} is one run of a compare; rerun its parent folder")
    return found[0], command


def replay(command: list[str], out: Path, overwrite: bool) -> list[str]:
    """A recorded `diffgrn …` command's arguments, writing into `out` instead (choice
    names renamed since it was recorded are translated)."""
    kept, skip = [], False
    for a in command[1:]:  # drop the old --out and --overwrite
        skip, drop = a == "--out", skip or a.startswith("--out=") or a in ("--out", "--overwrite")
        a = RENAMED.get((kept[-1] if kept else "", a), a)
        kept += [] if drop else [a]
    return kept + ["--out", str(out)] + (["--overwrite"] if overwrite else [])


def _which(iteration: int) -> str:
    return "the start: no iteration beat it" if iteration < 0 else f"iteration {iteration}"
