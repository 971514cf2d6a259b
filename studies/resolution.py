"""Resolution check: does a regulator's utility belong to the SDE or to the Euler map?

Hard U at the objective's dt and at dt / --refine (same T), against the regulator's
stiffness dt·max|f'| (`diffgrn.diagnostics.stiffness`), for a grid of tanh regulators
f = a·tanh(−b(s̄ − c)) and for any saved regulators given with --regulators (each on the
objective it was trained on: its tissue, genes, readout genes, T, σ and R). Where the
stiffness is well above 1, Euler at dt does not resolve the drift, and a utility that
falls at the finer step was an artefact of the discretisation.
"""

import itertools
from pathlib import Path

import equinox as eqx
import jax
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffgrn  # noqa: E402

from . import common  # noqa: E402

GRID = dict(a=(0.3, 1.0, 3.0, 10.0, 30.0), b=(3.0, 10.0, 30.0, 100.0), c=(0.4, 0.5, 0.6))
QUICK_GRID = dict(a=(1.0, 30.0), b=(10.0,), c=(0.4,))
RESOLVED = 1.0  # stiffness below this counts as resolved


def _utility_fn(objective, repeats):
    """Mean hard U over `repeats` draws of the objective's replicates, jitted once."""
    keys = jr.split(jr.key(7), repeats)
    return eqx.filter_jit(lambda reg: jax.vmap(lambda k: objective.hard(reg, k).value)(keys).mean())


def evaluate(regulators: dict, objective, refine: int, repeats: int) -> dict:
    """For each named regulator: stiffness and hard U at dt and at dt / refine."""
    dyn = objective.dynamics
    fine = objective.replace(dynamics=dyn.replace(dt=dyn.dt / refine))
    u_coarse, u_fine = _utility_fn(objective, repeats), _utility_fn(fine, repeats)
    out = {}
    for name, reg in regulators.items():
        out[name] = dict(
            stiffness=float(diffgrn.diagnostics.stiffness(reg, dyn.dt)),
            u_dt=float(u_coarse(reg)),
            u_fine=float(u_fine(reg)),
        )
    return out


def main(argv=None):
    parser = common.parser("resolution", __doc__)
    parser.add_argument("--boundary", choices=("open", "pinned", "periodic"), default="open")
    parser.add_argument(
        "--refine", type=int, default=5, help="the finer step is dt / REFINE (default 5)"
    )
    parser.add_argument(
        "--regulators",
        type=Path,
        nargs="*",
        default=[],
        help="saved regulator folders (e.g. runs/compare-open/cmaes-seed0/"
        "best) to check besides the tanh grid",
    )
    args = parser.parse_args(argv)
    if args.refine < 2:
        parser.error(f"--refine must be an integer >= 2; got {args.refine}")
    out = common.Output("resolution", args)
    base = common.base_objective(args.quick, args)
    base = base.replace(tissue=diffgrn.Chain(base.tissue.n_cells, args.boundary))
    grid = QUICK_GRID if args.quick else GRID
    tanh = {
        f"tanh a={a:g} b={b:g} c={c:g}": diffgrn.TanhRegulator(a, b, c)
        for a, b, c in itertools.product(grid["a"], grid["b"], grid["c"])
    }
    repeats = 2 if args.quick else 4
    rows = evaluate(tanh, base, args.refine, repeats)
    saved_rows = {}
    for path in args.regulators:
        loaded = diffgrn.load(path)
        own = loaded.config.get("objective")
        objective = diffgrn.Objective.from_config(own) if own else base
        saved_rows.update(evaluate({str(path): loaded.regulator}, objective, args.refine, repeats))
        saved_rows[str(path)]["dt"] = objective.dynamics.dt

    def best(names, resolved):
        names = [n for n in names if (rows[n]["stiffness"] < RESOLVED) == resolved]
        return max(names, key=lambda n: rows[n]["u_dt"]) if names else None

    summary = {}
    for label, resolved in (("resolved", True), ("unresolved", False)):
        name = best(list(rows), resolved)
        summary[f"best_{label}"] = None if name is None else dict(name=name, **rows[name])
    for name, r in {**rows, **saved_rows}.items():
        print(
            f"{name:60s} dt·max|f'| {r['stiffness']:8.3f}  U(dt) {r['u_dt']:.3f}  "
            f"U(dt/{args.refine}) {r['u_fine']:.3f}"
        )
    for label, r in summary.items():
        if r is not None:
            print(
                f"{label}: {r['name']}  U(dt) {r['u_dt']:.3f} → U(dt/{args.refine}) "
                f"{r['u_fine']:.3f}"
            )

    fig, ax = plt.subplots(figsize=(5.5, 5))
    st = np.array([r["stiffness"] for r in rows.values()])
    sc = ax.scatter(
        [r["u_dt"] for r in rows.values()],
        [r["u_fine"] for r in rows.values()],
        c=np.log10(np.maximum(st, 1e-3)),
        cmap="viridis",
        s=25,
        label="tanh grid",
    )
    fig.colorbar(sc, ax=ax, label="log10 dt·max|f'|")
    for i, (name, r) in enumerate(saved_rows.items()):
        ax.scatter(
            r["u_dt"],
            r["u_fine"],
            marker="*",
            s=160,
            color=f"C{(i + 1) % 10}",
            edgecolor="k",
            label=Path(name).parent.name or name,
        )
    values = [v for r in {**rows, **saved_rows}.values() for v in (r["u_dt"], r["u_fine"])]
    lim = [max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.05)]
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.plot(lim, lim, "k:", lw=1)
    ax.set_xlabel(f"hard U at dt = {base.dynamics.dt:g}")
    ax.set_ylabel(f"hard U at dt = {base.dynamics.dt / args.refine:g}")
    ax.set_title(f"{args.boundary} boundary, T = {base.dynamics.t_final:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    out.figure(fig, "resolution.png")
    out.write(
        dict(
            boundary=args.boundary,
            dt=base.dynamics.dt,
            refine=args.refine,
            resolved_below=RESOLVED,
            tanh=rows,
            saved=saved_rows,
            **summary,
        )
    )
    return rows


if __name__ == "__main__":
    main()
