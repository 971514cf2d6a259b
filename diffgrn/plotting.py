"""Figures: training curves, the learned regulator, pattern heat maps, kymographs."""

from collections.abc import Mapping

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .regulator import AbstractRegulator, TanhRegulator  # noqa: E402
from .train import History  # noqa: E402

X_LABELS = dict(iteration="iteration", wall_time="wall time in method steps (s)",
                replicate_steps="simulated replicate-steps")


def plot_histories(histories: Mapping[str, History], x: str = "iteration", ax=None):
    """Hard utility on fresh noise (and soft utility where defined) against `x`."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {', '.join(X_LABELS)}; got {x!r}")
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    for name, h in histories.items():
        xs = np.asarray(getattr(h, x), float)
        line, = ax.plot(xs, h.hard_utility, label=f"{name}: hard U (fresh noise)")
        soft = np.asarray(h.soft_utility, float)
        if np.isfinite(soft).any():
            ax.plot(xs, soft, "--", color=line.get_color(), alpha=0.6,
                    label=f"{name}: soft U (training draw)")
    return _finish(ax, x, "utility (bits per cell)")


def _finish(ax, x: str, ylabel: str):
    """Shared axes layout for curves against `x`."""
    if x in ("replicate_steps", "wall_time"):  # methods differ by orders of magnitude
        ax.set_xscale("log")
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_regulator(regulator: AbstractRegulator, ax=None, b_reference: float = 10.0):
    """The learned f(s̄) against lateral inhibition a·tanh(−b(s̄ − ½)) of equal
    amplitude."""
    ax = ax or plt.figure(figsize=(5, 4)).gca()
    s = jnp.linspace(0.0, 1.0, 201)
    f = np.asarray(regulator(s))
    a = float(np.max(np.abs(f))) or 1.0
    ref = np.asarray(TanhRegulator(a=a, b=b_reference, c=0.5)(s))
    ax.plot(s, f, label="learned f")
    ax.plot(s, ref, "--", label=f"{a:.2g}·tanh(−{b_reference:g}(s̄ − ½))")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0.5, color="k", lw=0.5)
    ax.set_xlabel("neighbour mean s̄")
    ax.set_ylabel("ds/dt")
    ax.legend(fontsize=8)
    return ax


def plot_patterns(states, ax=None, max_rows: int = 200):
    """Heat map of binary fates, one row per replicate, sorted by pattern."""
    z = np.asarray(states) >= 0.5
    z = z[np.lexsort(z.T[::-1])][:max_rows]
    ax = ax or plt.figure(figsize=(4, 5)).gca()
    ax.imshow(z, aspect="auto", cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
    ax.set_xlabel("cell")
    ax.set_ylabel("replicate (sorted by pattern; black = fate 1)")
    ax.set_xticks(range(z.shape[1]))
    return ax


def plot_kymograph(trajectory, dt: float, ax=None):
    """States of one replicate over time: `trajectory` is `(times, cells)`."""
    traj = np.asarray(trajectory)
    ax = ax or plt.figure(figsize=(5, 4)).gca()
    im = ax.imshow(traj, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                   interpolation="nearest", origin="lower",
                   extent=(-0.5, traj.shape[1] - 0.5, 0, dt * (traj.shape[0] - 1)))
    ax.set_xlabel("cell")
    ax.set_ylabel("time")
    plt.colorbar(im, ax=ax, label="state s")
    return ax


def save_figure(ax, path, title: str | None = None):
    fig = ax.figure
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_comparison(comparison, x: str = "wall_time", ax=None):
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
            ax.plot(getattr(r.history, x), r.history.hard_utility, color=color, lw=0.6,
                    alpha=0.35)
        xs = np.median([np.asarray(getattr(r.history, x))[:n] for r in runs], axis=0)
        ys = np.median([np.asarray(r.history.hard_utility)[:n] for r in runs], axis=0)
        ax.plot(xs, ys, color=color, lw=2, label=f"{name} (median of {len(runs)})")
    if comparison.target is not None:
        ax.axhline(comparison.target, color="k", ls=":", lw=1, label="target")
    return _finish(ax, x, "hard U on fresh noise (bits per cell)")
