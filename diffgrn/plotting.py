"""Figures: training curves, the learned regulator, pattern heat maps, kymographs."""

import os
import textwrap
from collections.abc import Mapping

import jax.numpy as jnp
import matplotlib
import matplotlib.ticker

if not os.environ.get("MPLBACKEND"):  # off-screen, unless chosen (Jupyter's inline sets it)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jaxtyping import Array, Float, Shaped  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .compare import Comparison  # noqa: E402
from .regulator import AbstractRegulator, TanhRegulator  # noqa: E402
from .tissue import Tissue  # noqa: E402
from .train import History  # noqa: E402

X_LABELS = dict(
    iteration="iteration",
    wall_time="wall time in method steps (s)",
    replicate_steps="simulated replicate-steps",
)
# Methods differ by orders of magnitude in cost: costs on a log axis.
X_SCALES = dict(iteration="linear", wall_time="log", replicate_steps="log")


def plot_histories(
    histories: Mapping[str, History], x: str = "iteration", ax: Axes | None = None
) -> Axes:
    """Hard utility on fresh noise (and soft utility where defined) against `x`."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {', '.join(X_LABELS)}; got {x!r}")
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    for name, h in histories.items():
        xs = np.asarray(getattr(h, x), float)
        (line,) = ax.plot(xs, h.hard_utility, label=f"{name}: hard U (fresh noise)")
        soft = np.asarray(h.soft_utility, float)
        if np.isfinite(soft).any():
            ax.plot(
                xs,
                soft,
                "--",
                color=line.get_color(),
                alpha=0.6,
                label=f"{name}: soft U (training draw)",
            )
    return _finish(ax, x, "utility (bits per cell)")


def plot_run(
    result, fresh: dict, title: str, ax: Axes | None = None, parts: tuple | None = None
) -> Axes:
    """One run's training curve: hard U, S_pat and S_rep of the monitored candidate on
    each iteration's fresh draw, the selected iteration, and the run's reported number
    (the best regulator's fresh-noise assessment, mean ± s.e.). `parts` renames the
    two parts (e.g. `("agreement", "exact hits")` for a `TargetPattern`)."""
    ylabel = "bits per cell" if parts is None else "utility"
    parts = parts or ("S_pat", "S_rep")
    ax = ax or plt.figure(figsize=(9, 4)).gca()
    h = result.history
    xs = np.asarray(h.iteration, float)
    ax.plot(xs, h.hard_utility, color="C0", label="hard U (each iteration's fresh draw)")
    ax.plot(xs, h.hard_s_pat, color="C2", lw=0.8, alpha=0.7, label=parts[0])
    ax.plot(xs, h.hard_s_rep, color="C3", lw=0.8, alpha=0.7, label=parts[1])
    soft = np.asarray(h.soft_utility, float)
    if np.isfinite(soft).any():
        ax.plot(xs, soft, "--", color="C0", alpha=0.5, label="soft U (training draw)")
    sem = fresh["std"] / np.sqrt(fresh["repeats"])
    if result.best_iteration >= 0:
        ax.axvline(result.best_iteration, color="k", ls=":", lw=1, label="selected iteration")
        ax.errorbar(
            [result.best_iteration],
            [fresh["mean"]],
            yerr=[sem],
            fmt="*",
            ms=12,
            color="k",
            label=f"reported: U = {fresh['mean']:.3f} ± {sem:.3f} (fresh noise)",
        )
    ax.set_title(wrap_title(title, ax), fontsize=10)
    return _finish(ax, "iteration", ylabel, outside=True)


def _finish(ax, x: str, ylabel: str, outside: bool = False):
    """Shared axes layout for curves against `x`; `outside`: the legend to the right
    of the axes, where it covers no curve."""
    ax.set_xscale(X_SCALES[x])
    # no minor labels: on a log axis over a short range 2×10⁻³, 3×10⁻³, … overlap
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if outside:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8)
    return ax


def plot_regulator(
    regulator: AbstractRegulator, ax: Axes | None = None, b_reference: float = 10.0
) -> Axes:
    """The learned drift on the homogeneous states s = s̄ = x (every gene at x), one
    curve per gene; for one gene, against lateral inhibition a·tanh(−b(s̄ − ½)) of
    equal amplitude (for a neighbours-only regulator this is f(s̄) itself)."""
    ax = ax or plt.figure(figsize=(5, 4)).gca()
    x = jnp.linspace(0.0, 1.0, 201)
    v = x[:, None] * jnp.ones(regulator.genes)
    f = np.asarray(regulator(v, v))
    for g in range(f.shape[1]):
        ax.plot(x, f[:, g], label="learned f" if f.shape[1] == 1 else f"gene {g}")
    if f.shape[1] == 1:
        a = float(np.max(np.abs(f))) or 1.0
        ref = np.asarray(TanhRegulator(a=a, b=b_reference, c=0.5)(v, v))[:, 0]
        ax.plot(x, ref, "--", label=f"{a:.2g}·tanh(−{b_reference:g}(s̄ − ½))")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0.5, color="k", lw=0.5)
    ax.set_xlabel(
        "neighbour mean s̄"
        if getattr(regulator, "neighbours_only", False)
        else "homogeneous state s = s̄"
    )
    ax.set_ylabel("ds/dt")
    ax.legend(fontsize=8)
    return ax


def fate_index(fates: Shaped[Array | np.ndarray, "replicates cells *m"]) -> np.ndarray:
    """Integer fates `(R, N)` in 0..2^m − 1 from fates `(R, N)` or `(R, N, m)`
    (gene j's bit is (k >> j) & 1)."""
    z = np.asarray(fates) >= 0.5
    if z.ndim == 2:
        return z.astype(int)
    return np.sum(z * (1 << np.arange(z.shape[-1])), axis=-1)


def plot_tissue(
    tissue: Tissue,
    values: Shaped[Array | np.ndarray, " cells"],
    ax: Axes | None = None,
    **scatter,
) -> PathCollection:
    """One value per cell drawn at the cell's place (`tissue.positions()`), as
    hexagons touching their neighbours on a regular sheet. `scatter` goes to
    `ax.scatter` (cmap, vmin, vmax, …). Returns the scatter's mappable."""
    ax = ax or plt.figure(figsize=(4, 4)).gca()
    pos = tissue.positions()
    span = max(np.ptp(pos[:, 0]), np.ptp(pos[:, 1]), 1.0) + 1.0
    width_pt = 72 * ax.get_position().width * ax.figure.get_figwidth()
    scatter.setdefault("s", 0.75 * (width_pt / span) ** 2)
    scatter.setdefault("marker", "h")
    sc = ax.scatter(pos[:, 0], pos[:, 1], c=np.asarray(values), **scatter)
    ax.set_xlim(pos[:, 0].min() - 0.7, pos[:, 0].max() + 0.7)
    ax.set_ylim(pos[:, 1].min() - 0.7, pos[:, 1].max() + 0.7)
    ax.set_aspect("equal")
    ax.axis("off")
    return sc


def fate_colormap(n_fates: int):
    """The fate colours every figure uses: grey scale for 2 fates (black = fate 1),
    else one qualitative colour per fate."""
    if n_fates == 2:
        return plt.get_cmap("Greys", 2)
    return plt.get_cmap("tab10" if n_fates <= 10 else "tab20", n_fates)


def plot_tissue_fates(
    tissue: Tissue,
    fates: Shaped[Array | np.ndarray, "replicates cells *m"],
    replicates: int = 3,
    n_fates: int = 2,
) -> Figure:
    """Fate maps of a few replicates on the tissue's layout, and the per-cell
    frequency of fate 1 (or, for more than two fates, of each cell's commonest fate)
    over all replicates. Returns the figure."""
    k = fate_index(fates)
    n_maps = min(replicates, k.shape[0])
    fig, axes = plt.subplots(1, n_maps + 1, figsize=(3.2 * (n_maps + 1), 3.2))
    cmap = fate_colormap(n_fates)
    for r in range(n_maps):
        plot_tissue(
            tissue,
            k[r],
            axes[r],
            cmap=cmap,
            vmin=-0.5,
            vmax=n_fates - 0.5,
            edgecolors="0.6",
            linewidths=0.3,
        )
        axes[r].set_title(
            f"replicate {r} (black: fate 1)" if n_fates == 2 else f"replicate {r}", fontsize=9
        )
    if n_fates == 2:
        freq, label = k.mean(axis=0), "fraction of replicates in fate 1"
    else:
        counts = np.stack([(k == f).mean(axis=0) for f in range(n_fates)])
        freq, label = counts.max(axis=0), "frequency of the cell's commonest fate"
    sc = plot_tissue(tissue, freq, axes[-1], cmap="viridis", vmin=0, vmax=1)
    axes[-1].set_title("per-cell frequency", fontsize=9)
    fig.colorbar(sc, ax=axes[-1], label=label, shrink=0.8)
    return fig


def plot_patterns(
    fates: Shaped[Array | np.ndarray, "replicates cells *m"],
    ax: Axes | None = None,
    max_rows: int = 200,
) -> Axes:
    """Heat map of fates `(R, N)` (or `(R, N, m)`: fate index over m readout genes),
    one row per replicate, sorted by pattern."""
    z = fate_index(fates)
    n_fates = 2 if np.asarray(fates).ndim == 2 else 2 ** np.asarray(fates).shape[-1]
    z = z[np.lexsort(z.T[::-1])][:max_rows]
    ax = ax or plt.figure(figsize=(4, 5)).gca()
    im = ax.imshow(
        z,
        aspect="auto",
        cmap=fate_colormap(n_fates),
        interpolation="nearest",
        vmin=-0.5,
        vmax=n_fates - 0.5,
    )
    if n_fates > 2:
        plt.colorbar(im, ax=ax, ticks=range(n_fates), label="fate")
    ax.set_xlabel("cell")
    ax.set_ylabel(
        "replicate (sorted by pattern; black = fate 1)"
        if n_fates == 2
        else f"replicate (sorted by pattern; colour = fate of {n_fates})"
    )
    if z.shape[1] <= 20:
        ax.set_xticks(range(z.shape[1]))
    return ax


def plot_kymograph(
    trajectory: Float[Array | np.ndarray, "times cells *genes"],
    dt: float,
    ax: Axes | None = None,
    gene: int = 0,
) -> Axes:
    """States of one replicate over time: `trajectory` is `(times, cells)` or
    `(times, cells, genes)` (then `gene` is shown)."""
    traj = np.asarray(trajectory)
    if traj.ndim == 3:
        traj = traj[..., gene]
    ax = ax or plt.figure(figsize=(5, 4)).gca()
    im = ax.imshow(
        traj,
        aspect="auto",
        cmap="viridis",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        origin="lower",
        extent=(-0.5, traj.shape[1] - 0.5, 0, dt * (traj.shape[0] - 1)),
    )
    ax.set_xlabel("cell")
    ax.set_ylabel("time")
    plt.colorbar(im, ax=ax, label=f"state s (gene {gene})")
    return ax


def save_figure(ax: Axes, path: str | os.PathLike, title: str | None = None) -> None:
    """Save `ax`'s figure (closed afterwards), `title` wrapped to the axes' width and
    nothing cut off (legends outside the axes included)."""
    fig = ax.figure
    if title:
        ax.set_title(wrap_title(title, ax), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def wrap_title(title: str, ax: Axes, fontsize: float = 10) -> str:
    """`title` broken into lines that fit over `ax` (about 0.55 em per character)."""
    inches = ax.get_position().width * ax.figure.get_figwidth()
    return textwrap.fill(title, max(20, int(inches * 72 / (0.55 * fontsize))))


def plot_comparison(comparison: Comparison, x: str = "wall_time", ax: Axes | None = None) -> Axes:
    """Hard utility on fresh noise against `x` for every method: median over seeds
    (thick) and each seed (thin)."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {', '.join(X_LABELS)}; got {x!r}")
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    for i, (name, runs) in enumerate(comparison.runs.items()):
        color = f"C{i}"
        n = min(len(r.history) for r in runs)
        if n == 0:
            continue
        for r in runs:
            ax.plot(getattr(r.history, x), r.history.hard_utility, color=color, lw=0.6, alpha=0.35)
        xs = np.median([np.asarray(getattr(r.history, x))[:n] for r in runs], axis=0)
        ys = np.median([np.asarray(r.history.hard_utility)[:n] for r in runs], axis=0)
        ax.plot(xs, ys, color=color, lw=2, label=f"{name} (median of {len(runs)})")
    if comparison.target is not None:
        ax.axhline(comparison.target, color="k", ls=":", lw=1, label="target")
    loss = any(r.history.direction == -1 for runs in comparison.runs.values() for r in runs)
    return _finish(
        ax, x, "loss on fresh noise" if loss else "hard U on fresh noise (bits per cell)"
    )


def plot_coverage(libraries: Mapping, ax: Axes | None = None) -> Axes:
    """Occupied descriptor bins against simulations, one curve per exploration
    (`{name: Library}`)."""
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    for name, lib in libraries.items():
        sims, filled = zip(*lib.coverage)
        ax.plot(sims, filled, marker=".", label=f"{name}: {filled[-1]} bins")
    ax.set_xlabel("simulations (regulators, each on R replicates)")
    lib = next(iter(libraries.values()))
    ax.set_ylabel(f"occupied bins ({lib.bins} per descriptor)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_descriptor_space(library, title: str | None = None) -> Figure:
    """The library in descriptor space: the first descriptor against each other one,
    each regulator a dot coloured by its hard utility."""
    d = np.asarray(library.descriptors, float)
    n_panels = max(1, d.shape[1] - 1)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.8), squeeze=False)
    util = np.asarray(library.utility, float)
    for j, ax in enumerate(axes[0]):
        y = d[:, j + 1] if d.shape[1] > 1 else np.zeros(len(d))
        sc = ax.scatter(d[:, 0], y, c=util, s=6, cmap="viridis", alpha=0.8)
        ax.set_xlabel(library.names[0])
        ax.set_ylabel(library.names[j + 1] if d.shape[1] > 1 else "")
        ax.set_xlim(*library.bounds[0])
        if d.shape[1] > 1:
            ax.set_ylim(*library.bounds[j + 1])
        ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=axes[0, -1], label="hard utility (same draw)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gallery_rows(library, count: int = 12) -> list[int]:
    """`count` rows from distinct descriptor bins, spread over the bins in order (the
    most reproducible regulator of each chosen bin)."""
    cells = library.cells()
    ok = np.all(np.isfinite(np.asarray(library.descriptors, float)), axis=1)
    keys = [tuple(c) for c in cells]
    best: dict = {}
    rank = np.nan_to_num(library.dominance(), nan=-1.0)
    for i in np.flatnonzero(ok):
        if keys[i] not in best or rank[i] > rank[best[keys[i]]]:
            best[keys[i]] = i
    chosen = [best[k] for k in sorted(best)]
    if len(chosen) > count:
        chosen = [chosen[j] for j in np.linspace(0, len(chosen) - 1, count).round().astype(int)]
    return [int(i) for i in chosen]


def plot_gallery(library, tissue: Tissue, count: int = 12, n_fates: int = 2) -> Figure:
    """Dominant patterns of regulators from distinct descriptor bins, drawn on the
    tissue, each titled with its descriptors."""
    rows = gallery_rows(library, count)
    cols = min(4, max(1, len(rows)))
    nrows = max(1, -(-len(rows) // cols))
    flat = np.ptp(tissue.positions()[:, 1]) == 0  # a chain: one row of cells
    height = 1.0 if flat else 2.8
    fig, axes = plt.subplots(nrows, cols, figsize=(3.3 * cols, height * nrows + 0.6), squeeze=False)
    m = max(1, int(round(np.log2(n_fates))))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), rows):
        pattern = np.asarray(library.patterns[i]).reshape(tissue.n_cells, m)
        plot_tissue(
            tissue,
            fate_index(pattern[None])[0],
            ax,
            cmap=fate_colormap(n_fates),
            vmin=-0.5,
            vmax=n_fates - 0.5,
            edgecolors="0.6",
            linewidths=0.3,
        )
        values = ", ".join(f"{v:.2f}" for v in library.descriptors[i])
        ax.set_title(f"#{i}: ({values})\nU = {float(library.utility[i]):.3f}", fontsize=8)
    fig.suptitle(
        "dominant pattern of regulators from distinct bins; descriptors: "
        + ", ".join(library.names),
        fontsize=9,
    )
    fig.tight_layout()
    return fig
