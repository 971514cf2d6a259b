"""Coupled oscillators: the 3-gene transcriptional circuit of the `oscillators` study
in every cell of a ring (and of a small lattice), coupled through the neighbour
mean: dy/dt = sigmoid(W y + V ȳ + b) − y. What does coupling do to the oscillations?

1. Search: random search over (W, b) with V = 0, random search over (W, b, V) and
   IMGEP over (W, b, V) with the goal (synchrony, lag, coherence, amplitude,
   frequency, active) of `diffgrn.Waves`; each library's tissues counted as
   synchronous / travelling wave / alternating / incoherent / none (`WaveKind`).
2. Sweep: one-cell oscillators (IMGEP on one cell, as in `oscillators`) put in every
   cell with random initial states, V = c·I for c from −`vmax` to `vmax` (c = 0:
   uncoupled), counted the same way, on the ring, on a ring of one cell more (the
   other parity: anti-phase neighbours fit an even ring only) and on a periodic
   square lattice.

W ∈ [−30, 30]³ˣ³, b ∈ [−10, 10]³, V ∈ [−vmax, vmax]³ˣ³ (k = 1), initial states
uniform in [0, 1] per cell and gene (drawn from each simulation's key), Euler
dt = 0.01 to T = 50, no noise, gene 0 recorded every 5 steps over the last half.
Quick: a ring of 7 cells, T = 20, 200 rollouts per search, 3 couplings, no
second ring, a 3×3 lattice.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn.behaviour import GoalIMGEP, UniformSearch, discover, replay  # noqa: E402
from diffgrn.observe import Oscillation, Spectrum, Trajectory  # noqa: E402
from diffgrn.space import Box, SearchSpace  # noqa: E402
from diffgrn.waves import KINDS, WaveKind, Waves, pairs_along  # noqa: E402

from . import common  # noqa: E402
from .oscillators import circuit, periodic  # noqa: E402

EVERY = 5  # recording step (Euler steps): 0.05 time units, Nyquist 10 cycles per unit


def tissue_objective(tissue, t_final):
    return diffgrn.Objective(
        tissue=tissue,
        dynamics=diffgrn.Dynamics(
            t_final=t_final,
            dt=0.01,
            sigma=0.0,
            constraint=diffgrn.Unconstrained(),
            init_low=0.0,
            init_high=1.0,
        ),
        genes=3,
        replicates=1,
        utility=diffgrn.NoUtility(),
    )


def spaces(vmax):
    """(V = 0, V searched) spaces over the circuit."""
    fixed = SearchSpace({"W": Box(-30, 30), "b": Box(-10, 10)}, frozen=("V", "log_k"))
    coupled = SearchSpace(
        {"W": Box(-30, 30), "b": Box(-10, 10), "V": Box(-vmax, vmax)}, frozen=("log_k",)
    )
    return fixed, coupled


def template():
    reg = diffgrn.TranscriptionalRegulator(3, key=jr.key(0))
    return eqx.tree_at(lambda r: r.V, reg, jnp.zeros((3, 3)))


def search(args, objective, waves, kind):
    """Part 1: the three libraries on the ring, counted by kind."""
    fixed, coupled = spaces(args.vmax)
    window = Trajectory(start=0.5, every=EVERY, genes=(0,))
    methods = {
        "random, V = 0": (fixed, UniformSearch()),
        "random, V searched": (coupled, UniformSearch()),
        "IMGEP, V searched": (coupled, GoalIMGEP()),
    }
    rows, libs = [], {}
    for name, (space, strategy) in methods.items():
        t = common.time.perf_counter()
        lib = discover(
            objective,
            template(),
            space,
            strategy,
            observe=window,
            goal=waves,
            descriptors=[waves],
            budget=args.budget,
            batch=100,
            key=jr.key(args.seed),
            progress=False,
        )
        seconds = common.time.perf_counter() - t
        counts = kind.counts(lib.descriptors)
        turns = windings(lib.descriptors, kind, objective.n_cells)
        rows.append(dict(method=name, **counts, windings=turns, seconds=round(seconds, 1)))
        libs[name] = (lib, space)
        print(f"{name}: {counts}; waves by winding {turns} ({seconds:.1f} s)", flush=True)
    return rows, libs


def one_cell_oscillators(args):
    """Oscillating (W, b) from IMGEP on one cell (the `oscillators` study's search)."""
    objective, regulator, space = circuit(args.t_final)
    samples = objective.dynamics.n_steps // 2
    lib = discover(
        objective,
        regulator,
        space,
        GoalIMGEP(),
        observe=Trajectory(start=0.5, genes=(0,)),
        goal=Spectrum(),
        descriptors=[Oscillation(threshold=40.0 * samples / 5000)],
        budget=args.cell_budget,
        batch=100,
        key=jr.key(args.seed + 1),
        progress=False,
    )
    idx = np.flatnonzero(periodic(lib))
    order = idx[np.argsort(lib.descriptors[idx, 2])]  # by frequency
    pick = order[np.linspace(0, len(order) - 1, min(args.circuits, len(order))).astype(int)]
    bound = space.bind(regulator)
    circuits = [bound.build(jnp.asarray(lib.points[i]))[0] for i in np.unique(pick)]
    print(f"one cell: {len(idx)} oscillators of {args.cell_budget}; {len(circuits)} used")
    return circuits, len(idx)


def sweep(args, objective, waves, kind, circuits, label):
    """Part 2: each one-cell oscillator in every cell, V = c·I, `args.draws` initial
    states each; counts per c."""
    window = Trajectory(start=0.5, every=EVERY, genes=(0,))
    dyn = objective.dynamics
    cs = np.linspace(-args.vmax, args.vmax, args.couplings)
    W = jnp.stack([r.W for r in circuits])
    b = jnp.stack([r.b for r in circuits])
    base = template()

    @jax.jit
    def run(W, b, c, key):
        def one(W, b, c, key):
            reg = eqx.tree_at(lambda r: (r.W, r.V, r.b), base, (W, c * jnp.eye(3), b))
            states = objective.simulate(reg, key, observe=window)
            return waves(window.recording(states, dyn.n_steps, dyn.dt))

        return jax.vmap(one)(W, b, c, key)

    n = len(circuits)
    rows, table = [], []
    for j, c in enumerate(cs):
        ws = jnp.repeat(W, args.draws, 0)
        bs = jnp.repeat(b, args.draws, 0)
        keys = jr.split(jr.fold_in(jr.key(args.seed + 2), j), n * args.draws)
        d = np.asarray(run(ws, bs, jnp.full(n * args.draws, c), keys))
        counts = kind.counts(d)
        row = dict(tissue=label, coupling=float(c), **counts)
        if isinstance(objective.tissue, diffgrn.Chain):
            row["windings"] = windings(d, kind, objective.n_cells)
        rows.append(row)
        table.append(d)
    print(f"sweep on {label}: " + "; ".join(
        f"c={r['coupling']:+.1f}: " + ",".join(str(r[k]) for k in KINDS) for r in rows
    ), flush=True)  # fmt: skip
    return rows, np.stack(table), cs


def best_wave(rows, kind):
    """The travelling wave to show: of the coherent ones (≥ 0.95), the largest
    amplitude among those with |lag| ≤ π/2 (a wave that spans several cells), else
    the most coherent wave; None if there is no travelling wave."""
    idx = np.flatnonzero(kind(rows) == KINDS.index("travelling wave"))
    if not len(idx):
        return None
    d = rows[idx]
    short = (np.abs(d[:, 1]) <= math.pi / 2) & (d[:, 2] >= 0.95)
    if short.any():
        return int(idx[short][np.argmax(d[short, 3])])
    return int(idx[np.argmax(d[:, 2])])


def windings(rows, kind, cells):
    """Travelling waves on a ring of `cells` by winding number q = lag · cells / 2π
    (how many wavelengths fit round the ring; the sign is the direction)."""
    d = rows[kind(rows) == KINDS.index("travelling wave")]
    q = np.round(d[:, 1] * cells / (2 * math.pi)).astype(int)
    values, counts = np.unique(q, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def kymograph_data(args, objective, libs, kind, sweeps):
    """(states (times, cells), title, descriptors) of the travelling wave `best_wave`
    picks: from the search libraries first, else from the sweeps (rings, then
    lattice); None if there is none."""
    window = Trajectory(start=0.5, every=EVERY, genes=(0,))
    names = list(libs)
    stacked = np.concatenate([libs[n][0].descriptors for n in names])
    at = best_wave(stacked, kind)
    if at is not None:
        sizes = np.cumsum([0] + [len(libs[n][0].descriptors) for n in names])
        m = int(np.searchsorted(sizes, at, side="right") - 1)
        name, i = names[m], int(at - sizes[m])
        lib, space = libs[name]
        y = np.asarray(replay(lib, [i], objective, space, window))[0, 0, :, :, 0]
        d = lib.descriptors[i]
        return y, f"{name}, simulation {i}: lag {d[1]:+.2f} rad, coherence {d[2]:.2f}", d
    for label, (obj, data, cs, circuits) in sweeps.items():
        flat = data.reshape(-1, data.shape[-1])
        i = best_wave(flat, kind)
        if i is None:
            continue
        n = len(circuits) * args.draws
        j, m = divmod(i, n)
        reg = eqx.tree_at(lambda r: r.V, circuits[m // args.draws], cs[j] * jnp.eye(3))
        key = jr.split(jr.fold_in(jr.key(args.seed + 2), j), n)[m]
        y = np.asarray(obj.simulate(reg, key, observe=window))[0, :, :, 0]
        d = flat[i]
        title = (
            f"sweep on the {label}, circuit {m // args.draws}, c = {cs[j]:+.1f}: "
            f"lag {d[1]:+.2f} rad, coherence {d[2]:.2f}"
        )
        return y, title, d
    return None


def figure(out, args, objective, libs, kind, sweeps, kymo):
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    ax = axes[0]
    if kymo is None:
        ax.text(0.5, 0.5, "no travelling wave found", ha="center", va="center")
        ax.set_axis_off()
    else:
        y, title, _ = kymo
        step = EVERY * objective.dynamics.dt
        y = y[-int(round(10.0 / step)) :]  # the last 10 time units
        t1 = objective.dynamics.t_final
        t0 = t1 - y.shape[0] * step
        im = ax.imshow(y.T, aspect="auto", origin="lower", extent=(t0, t1, -0.5, y.shape[1] - 0.5),
                       cmap="viridis", interpolation="nearest")  # fmt: skip
        fig.colorbar(im, ax=ax, label="gene 0")
        ax.set(xlabel="t", ylabel="cell (row-major on a lattice)", title=f"kymograph: {title}")
        ax.title.set_fontsize(8)
    colours = dict(zip(KINDS, ("C2", "C3", "C4", "C0", "0.8")))
    for ax, (name, (lib, _)) in zip(axes[1:3], list(libs.items())[1:]):
        d = lib.descriptors
        k = kind(d)
        for i, kname in enumerate(KINDS):
            m = (k == i) & np.all(np.isfinite(d), 1)
            if kname == "none":
                continue
            ax.scatter(d[m, 1], d[m, 0], s=10, color=colours[kname], label=f"{kname} ({m.sum()})")
        ax.set(xlabel="lag between neighbours (rad)", ylabel="synchrony", xlim=(-math.pi, math.pi),
               ylim=(0, 1.02), title=f"{name} (ring of {args.cells})")  # fmt: skip
        ax.legend(fontsize=7)
    ax = axes[3]
    for label, rows in sweeps.items():
        c = [r["coupling"] for r in rows]
        total = sum(rows[0][k] for k in KINDS)
        style = {0: "-", 1: ":", 2: "--"}[list(sweeps).index(label)]
        for kname in ("synchronous", "travelling wave", "alternating", "incoherent"):
            ax.plot(c, [r[kname] / total for r in rows], style, color=colours[kname],
                    label=f"{kname} ({label})")  # fmt: skip
    ax.set(xlabel="coupling c (V = c·I)", ylabel="fraction of one-cell oscillators",
           title="coupling sweep")  # fmt: skip
    ax.legend(fontsize=6)
    out.figure(fig, "coupled.png")


def main(argv=None):
    p = common.parser("coupled", __doc__)
    p.add_argument("--budget", type=int, default=None, help="rollouts per search (3000; 200)")
    p.add_argument("--cells", type=int, default=None, help="cells of the ring (15; 7)")
    p.add_argument("--vmax", type=float, default=10.0, help="V's box [-vmax, vmax] (10)")
    args = p.parse_args(argv)
    q = args.quick
    args.budget = args.budget or (200 if q else 3000)
    args.cells = args.cells or (7 if q else 15)
    args.t_final = 20.0 if q else 50.0
    args.cell_budget = 200 if q else 1000
    args.circuits = 8 if q else 24
    args.draws = 2 if q else 4
    args.couplings = 3 if q else 11
    if args.budget < 100:
        raise SystemExit("coupled: --budget must be at least 100 (one batch)")
    if not args.vmax > 0:
        raise SystemExit(f"coupled: --vmax must be > 0; got {args.vmax}")
    if args.cells < 3:
        raise SystemExit("coupled: --cells must be at least 3")
    out = common.Output("coupled", args)
    kind = WaveKind()
    ring = diffgrn.Chain(args.cells, "periodic")
    side = 3 if q else 4
    sheet = diffgrn.Lattice(side, side, "square", "periodic")
    ring_obj = tissue_objective(ring, args.t_final)
    sheet_obj = tissue_objective(sheet, args.t_final)
    ring_waves = Waves(pairs=pairs_along(ring))
    sheet_waves = Waves(pairs=pairs_along(sheet))
    rows, libs = search(args, ring_obj, ring_waves, kind)
    circuits, n_osc = one_cell_oscillators(args)
    sweeps, data = {}, {}
    tissues = [(f"ring of {args.cells}", ring_obj, ring_waves)]
    if not q:  # the other parity: anti-phase neighbours fit an even ring only
        even = diffgrn.Chain(args.cells + 1, "periodic")
        even_obj = tissue_objective(even, args.t_final)
        tissues.append((f"ring of {args.cells + 1}", even_obj, Waves(pairs_along(even))))
    tissues.append((f"{side}×{side} lattice", sheet_obj, sheet_waves))
    for label, obj, w in tissues:
        if circuits:
            sweeps[label], d, cs = sweep(args, obj, w, kind, circuits, label)
            data[label] = (obj, d, cs, circuits)
    kymo = kymograph_data(args, ring_obj, libs, kind, data)
    figure(out, args, ring_obj, libs, kind, sweeps, kymo)
    print("travelling wave shown:", "none found" if kymo is None else kymo[1])
    out.write(
        dict(
            search=rows,
            one_cell_oscillators=n_osc,
            circuits=len(circuits),
            sweep=[r for rs in sweeps.values() for r in rs],
            kymograph=None if kymo is None else dict(title=kymo[1], waves=kymo[2]),
            settings=dict(
                budget=args.budget,
                cells=args.cells,
                t_final=args.t_final,
                vmax=args.vmax,
                draws=args.draws,
                lattice=f"{side}x{side}",
                kind=kind.config(),
                waves=ring_waves.config(),
            ),
        )
    )


if __name__ == "__main__":
    main()
