"""Oscillators: curiosity-driven discovery (IMGEP) against random search on the
3-gene transcriptional circuit of AutoDiscJax's second tutorial, then Adam toward a
target oscillation from each method's nearest discovery and from a random start, and
CMA-ES in the search space from the same starts (the same number of simulations).

dy/dt = sigmoid(W y + b) − y in one cell (k = 1, V frozen at 0), W ∈ [−30, 30]³ˣ³,
b ∈ [−10, 10]³, y0 ∈ [0, 1]³ searched, Euler dt = 0.01 to T = 100, no noise, one
replicate. Goal space: |rfft| of gene 0 over the last half; oscillation test: the
largest |FFT| peak above 40 and not at the first positive frequency. Coverage: bins
filled in (offset, amplitude, frequency), 20 per dimension over both libraries'
joint range, non-oscillators at (0, 0, 0). Quick: T = 20, 400 rollouts, one seed
(the threshold scaled to the shorter window).
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
from diffgrn.behaviour import GoalIMGEP, UniformSearch, discover, fit, loss_of  # noqa: E402
from diffgrn.discovery import occupied  # noqa: E402
from diffgrn.observe import Oscillation, Spectrum, TargetTrajectory, Trajectory  # noqa: E402
from diffgrn.space import Box, SearchSpace  # noqa: E402
from diffgrn.utility import TrajectoryFit  # noqa: E402

from . import common  # noqa: E402


def circuit(t_final: float = 100.0):
    """(objective, regulator, space) of the tutorial's circuit."""
    objective = diffgrn.Objective(
        tissue=diffgrn.Cell(),
        dynamics=diffgrn.Dynamics(
            t_final=t_final, dt=0.01, sigma=0.0, constraint=diffgrn.Unconstrained()
        ),
        genes=3,
        replicates=1,
        utility=diffgrn.NoUtility(),
    )
    regulator = diffgrn.TranscriptionalRegulator(3, key=jr.key(0))
    regulator = eqx.tree_at(lambda r: r.V, regulator, jnp.zeros((3, 3)))
    space = SearchSpace(
        {"W": Box(-30, 30), "b": Box(-10, 10)}, frozen=("V", "log_k"), init=Box(0, 1)
    )
    return objective, regulator, space


def periodic(lib) -> np.ndarray:
    return np.any(lib.descriptors != 0, axis=1) & np.all(np.isfinite(lib.descriptors), 1)


def explore_all(args, objective, regulator, space, detector):
    window = Trajectory(start=0.5, genes=(0,))
    rows, libs0 = [], None
    for seed in range(args.seeds):
        libs, times = {}, {}
        for name, strategy in (("random", UniformSearch()), ("imgep", GoalIMGEP())):
            t = common.time.perf_counter()
            libs[name] = discover(
                objective,
                regulator,
                space,
                strategy,
                observe=window,
                goal=Spectrum(),
                descriptors=[detector],
                budget=args.budget,
                batch=100,
                key=jr.key(seed),
                progress=False,
            )
            times[name] = common.time.perf_counter() - t
        d = np.concatenate([libs[m].descriptors for m in libs])
        d = d[np.all(np.isfinite(d), 1)]
        bounds = list(zip(d.min(0), np.maximum(d.max(0), d.min(0) + 1e-9)))
        row = dict(seed=seed)
        for m, lib in libs.items():
            curve = [
                (n, occupied(lib.descriptors[:n], bounds, 20))
                for n in range(100, args.budget + 1, 100)
            ]
            row[m] = dict(
                oscillators=int(periodic(lib).sum()),
                bins=curve[-1][1],
                curve=curve,
                seconds=round(times[m], 2),
            )
        row["oscillator_ratio"] = row["imgep"]["oscillators"] / max(1, row["random"]["oscillators"])
        row["bin_ratio"] = row["imgep"]["bins"] / max(1, row["random"]["bins"])
        print(
            f"seed {seed}: oscillators imgep {row['imgep']['oscillators']} random "
            f"{row['random']['oscillators']}; bins imgep {row['imgep']['bins']} random "
            f"{row['random']['bins']}; {times['imgep']:.1f} s / {times['random']:.1f} s",
            flush=True,
        )
        rows.append(row)
        if seed == 0:
            libs0 = libs
    return rows, libs0


def finetune(args, objective, regulator, space, libs, detector):
    """Adam (lr 1e-3, b1 0.02, b2 0.001) toward a random target from each library's
    oscillator of least L and from a random start, and CMA-ES in the search space from
    the same starts with the same number of simulations (population 10: 10
    generations for 100 Adam steps; population 20 from the random start). Both are
    `train` on the `TrajectoryFit` objective, so each keeps its start when no step
    beats it."""
    k = jr.key(args.seed + 100)
    ka, kw, kb, kr = jr.split(k, 4)
    amp = float(jr.uniform(ka, minval=0.1, maxval=0.5))
    freq = float(jr.beta(kw, 2.0, 8.0))
    off = float(jr.uniform(kb, minval=amp, maxval=1 - amp))
    target = TargetTrajectory(amp, freq, off)
    full = Trajectory(genes=(0,))
    bound = space.bind(regulator)
    batch_loss = loss_of(objective, bound, target, full, jr.key(0))
    rows, curves = [], {}
    starts = {}
    for m, lib in libs.items():
        idx = np.flatnonzero(periodic(lib))
        if not len(idx):
            starts[f"{m}'s nearest discovery"] = None
            continue
        losses = np.concatenate(
            [
                np.asarray(batch_loss(jnp.asarray(lib.points[idx[i : i + 100]])))
                for i in range(0, len(idx), 100)
            ]
        )
        j = int(idx[np.nanargmin(losses)])
        starts[f"{m}'s nearest discovery"] = (lib.points[j], j)
    starts["random start"] = (np.asarray(bound.uniform(kr, 1)[0]), None)
    window = Trajectory(start=0.5, genes=(0,))
    dyn = objective.dynamics

    def is_oscillator(th):
        reg, init = bound.build(th)
        states = objective.simulate(reg, jr.key(0), init=init, observe=window)
        return detector.detect(window.recording(states, dyn.n_steps, dyn.dt)).periodic[0]

    osc_of = jax.jit(jax.vmap(is_oscillator))
    scored = objective.replace(utility=TrajectoryFit(target, full))
    for name, start in starts.items():
        if start is None:
            rows.append(dict(start=name, found_at=None))
            continue
        theta, at = start
        begin = bound.regulator(jnp.asarray(theta))
        loss_start = float(batch_loss(jnp.asarray(theta)[None])[0])
        far = name == "random start"
        steps = args.random_steps if far else args.steps
        for method in ("adam", "cmaes"):
            seen = []
            keep = lambda i, r, seen=seen: seen.append(np.asarray(bound.flatten(r.final_regulator)))
            t = common.time.perf_counter()
            if method == "adam":
                res = fit(objective, space, begin, target, full, steps=steps, key=jr.key(0),
                          callback=keep)  # fmt: skip
                simulations = steps
            else:
                pop = 20 if far else 10
                cma = diffgrn.CMAES(population=pop, sigma=0.2 if far else 0.05)
                res = diffgrn.train(scored, begin, cma, space=space, key=jr.key(0),
                                    iterations=max(1, steps // pop), progress=False,
                                    callback=keep)  # fmt: skip
                simulations = pop * max(1, steps // pop)
            losses = np.asarray([loss_start, *res.history.hard_utility])
            point = np.asarray(bound.flatten(res.best_regulator))
            # the start's and the result's L by one evaluation (train's own selection
            # mean is batched differently: equal to a few ulps)
            loss_best = float(batch_loss(jnp.asarray(point)[None])[0])
            row = dict(
                start=name,
                method=method,
                found_at=at,
                simulations=simulations,
                iterations=len(res.history),
                loss_start=loss_start,
                loss_last=float(losses[-1]),
                loss_best=loss_best,
                best_iteration=res.best_iteration,
                seconds=round(common.time.perf_counter() - t, 1),
            )
            if far:  # did the search's candidates pass through an oscillator?
                pts = jnp.asarray(np.stack(seen))
                row["oscillators_visited"] = int(
                    sum(np.asarray(osc_of(pts[i : i + 500])).sum() for i in range(0, len(pts), 500))
                )
            rows.append(row)
            curves[f"{name}, {method}"] = dict(losses=losses, point=point, loss=row["loss_best"])
            print(row, flush=True)
    return dict(target=dict(amplitude=amp, frequency=freq, offset=off), rows=rows), curves, target


def figures(out, rows, libs, objective, space, regulator, curves, target):
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    colours = dict(imgep="C0", random="C1")
    ax = axes[0]
    for row in rows:
        for m in ("imgep", "random"):
            c = np.asarray(row[m]["curve"])
            ax.plot(c[:, 0], c[:, 1], color=colours[m], alpha=0.8,
                    label=m if row["seed"] == 0 else None)  # fmt: skip
    ax.set(xlabel="simulations", ylabel="bins filled (20³ over the joint range)",
           title="coverage, every seed")  # fmt: skip
    ax.legend()
    pairs = [(0, 1), (0, 2), (1, 2)]
    names = ("offset", "amplitude", "frequency")
    for ax, (i, j) in zip(axes[1:], pairs):
        for m in ("random", "imgep"):
            d = libs[m].descriptors[periodic(libs[m])]
            ax.scatter(d[:, i], d[:, j], s=4, alpha=0.5, color=colours[m], label=m)
        ax.set(xlabel=names[i], ylabel=names[j], title="oscillators found (seed 0)")
    axes[1].legend()
    out.figure(fig, "oscillators.png")

    lib = libs["imgep"]
    idx = np.flatnonzero(periodic(lib))
    if len(idx):
        d = lib.descriptors[idx]
        pick = idx[np.argsort(d[:, 2])[np.linspace(0, len(idx) - 1, min(12, len(idx))).astype(int)]]
        from diffgrn.behaviour import replay

        full = Trajectory(start=0.5)
        ys = np.asarray(replay(lib, pick, objective, space, full))  # (k, R, T, 1, 3)
        t = np.arange(ys.shape[2]) * objective.dynamics.dt
        fig, axes = plt.subplots(3, 4, figsize=(14, 7), sharex=True, sharey=True)
        for ax, y, i in zip(axes.ravel(), ys, pick):
            for g in range(3):
                ax.plot(t, y[0, :, 0, g], lw=0.8)
            o, a, f = lib.descriptors[i]
            ax.set_title(f"#{i}: b={o:.2f} A={a:.2f} w={f:.2f}", fontsize=8)
        out.figure(fig, "gallery.png")
    if curves:
        bound = space.bind(regulator)
        full = Trajectory(genes=(0,))
        fig, axes = plt.subplots(1, 2, figsize=(13, 4))
        for name, res in curves.items():
            axes[0].plot(res["losses"], label=name)
        axes[0].set(xlabel="iteration (Adam step; CMA-ES generation)", ylabel="L",
                    yscale="log", title="fine-tuning")  # fmt: skip
        axes[0].legend(fontsize=7)
        for name, res in curves.items():
            reg, init = bound.build(jnp.asarray(res["point"]))
            y = objective.simulate(reg, jr.key(0), init=init, observe=full)[0, :, 0, 0]
            t = (np.arange(y.shape[0]) + 1) * objective.dynamics.dt
            axes[1].plot(t, y, lw=0.8, label=f"{name}: L = {res['loss']:.2f}")
        axes[1].plot(t, np.asarray(target.target(jnp.asarray(t))), "k--", lw=0.8, label="target")
        axes[1].set(xlabel="t", ylabel="y₀", title="best after fine-tuning")
        axes[1].legend(fontsize=7)
        out.figure(fig, "finetune.png")


def main(argv=None):
    p = common.parser("oscillators", __doc__)
    p.add_argument("--budget", type=int, default=None, help="rollouts per method (5000; 400)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..S-1 (3; 1 quick)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps from a discovery (100)")
    p.add_argument("--random-steps", type=int, default=None, help="from a random start (5000)")
    args = p.parse_args(argv)
    q = args.quick
    args.budget = args.budget or (400 if q else 5000)
    args.seeds = args.seeds or (1 if q else 3)
    args.steps = args.steps or (10 if q else 100)
    args.random_steps = args.random_steps or (10 if q else 5000)
    t_final = 20.0 if q else 100.0
    objective, regulator, space = circuit(t_final)
    samples = objective.dynamics.n_steps // 2
    detector = Oscillation(threshold=40.0 * samples / 5000)
    out = common.Output("oscillators", args)
    rows, libs = explore_all(args, objective, regulator, space, detector)
    tune, curves, target = finetune(args, objective, regulator, space, libs, detector)
    figures(out, rows, libs, objective, space, regulator, curves, target)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in ("imgep", "random"):
        c = np.asarray(rows[0][m]["curve"])
        ax.plot(c[:, 0], c[:, 1], label=m)
    ax.set(xlabel="simulations", ylabel="bins filled", title="oscillator coverage (seed 0)")
    ax.legend()
    out.figure(fig, "oscillators-coverage.png")
    summary = dict(
        oscillators=dict(
            imgep=[r["imgep"]["oscillators"] for r in rows],
            random=[r["random"]["oscillators"] for r in rows],
        ),
        bins=dict(
            imgep=[r["imgep"]["bins"] for r in rows], random=[r["random"]["bins"] for r in rows]
        ),
        seconds=dict(
            imgep=[r["imgep"]["seconds"] for r in rows],
            random=[r["random"]["seconds"] for r in rows],
        ),
        finetune={f"{r['start']}, {r.get('method')}": r.get("loss_best") for r in tune["rows"]},
    )
    print(summary)
    if not all(math.isfinite(v) for v in summary["oscillators"]["imgep"]):
        raise SystemExit("oscillators: non-finite counts")
    out.write(dict(seeds=rows, finetune=tune, summary=summary, budget=args.budget))


if __name__ == "__main__":
    main()
