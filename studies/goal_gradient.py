"""Goal gradient: does a gradient goal-conditioned optimiser (a few normalised gradient
steps on the goal distance through the differentiable simulation, `GoalGradient`)
fill more of the oscillator space per solve than IMGEP's one mutation per goal?

The oscillators study's circuit, goal (|rfft| of gene 0's last half), detector and
binning (20 per dimension of (offset, amplitude, frequency) over every library's
joint range, non-oscillators at (0, 0, 0)). Both start from the same `--initial`
uniform draws (the same key); a gradient step is counted as two solves (forward and
backward), so at equal solves `GoalGradient` stores `(budget - initial) / (1 + 2
steps)` goal-directed points where IMGEP stores `budget - initial`. Seed 0 also runs
GoalGradient at equal stored points (more solves), to separate the effect per point
from the cost. Quick: T = 20, budget 400, batches of 20, one seed.
"""

import time

import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diffgrn.behaviour import GoalIMGEP, discover  # noqa: E402
from diffgrn.discovery import occupied  # noqa: E402
from diffgrn.goal_gradient import GoalGradient  # noqa: E402
from diffgrn.observe import Oscillation, Spectrum, Trajectory  # noqa: E402

from . import common  # noqa: E402
from .oscillators import circuit, periodic  # noqa: E402


def main(argv=None):
    p = common.parser("goal_gradient", __doc__)
    p.add_argument("--budget", type=int, default=None, help="solves per method (5000; 400)")
    p.add_argument("--initial", type=int, default=None, help="uniform draws first (1000; 100)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..S-1 (3; 1 quick)")
    p.add_argument("--steps", type=int, default=2, help="gradient steps per goal")
    p.add_argument("--step-size", type=float, default=0.02, help="unit-cube step length")
    args = p.parse_args(argv)
    q = args.quick
    budget, initial = args.budget or (400 if q else 5000), args.initial or (100 if q else 1000)
    seeds = args.seeds or (1 if q else 3)
    objective, regulator, space = circuit(20.0 if q else 100.0)
    samples = objective.dynamics.n_steps // 2
    detector = Oscillation(threshold=40.0 * samples / 5000)
    window = Trajectory(start=0.5, genes=(0,))
    imgep = GoalIMGEP(initial=initial)
    gradient = GoalGradient(imgep, steps=args.steps, step_size=args.step_size)
    batch = 20 if q else 100
    stored = initial + (budget - initial) // int(gradient.solves())
    stored -= (stored - initial) % batch  # whole batches
    out = common.Output("goal_gradient", args)
    rows, curves = [], {}
    for seed in range(seeds):
        runs = dict(imgep=(imgep, budget), gradient=(gradient, stored))
        if seed == 0:
            runs["gradient, equal points"] = (gradient, budget)
        libs, seconds = {}, {}
        for name, (strategy, n) in runs.items():
            t = time.perf_counter()
            libs[name] = discover(
                objective, regulator, space, strategy, observe=window, goal=Spectrum(),
                descriptors=[detector], budget=n, batch=batch, key=jr.key(seed), progress=False,
            )  # fmt: skip
            seconds[name] = time.perf_counter() - t
        d = np.concatenate([lib.descriptors for lib in libs.values()])
        d = d[np.all(np.isfinite(d), 1)]
        bounds = list(zip(d.min(0), np.maximum(d.max(0), d.min(0) + 1e-9)))
        row = dict(seed=seed)
        for name, lib in libs.items():
            strategy, n = runs[name]
            cost = initial + (n - initial) * strategy.solves()
            row[name] = dict(
                stored=n,
                solves=int(cost),
                oscillators=int(periodic(lib).sum()),
                bins=occupied(lib.descriptors, bounds, 20),
                seconds=round(seconds[name], 1),
            )
            if seed == 0:
                ks = range(batch, n + 1, batch)
                solves = [initial + (k - initial) * strategy.solves() if k > initial else k
                          for k in ks]  # fmt: skip
                bins = [occupied(lib.descriptors[:k], bounds, 20) for k in ks]
                curves[name] = (solves, bins)
        print(f"seed {seed}: " + "; ".join(
            f"{m} {r['oscillators']} oscillators, {r['bins']} bins, {r['solves']} solves, "
            f"{r['seconds']} s" for m, r in row.items() if m != "seed"), flush=True)  # fmt: skip
        rows.append(row)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (x, y) in curves.items():
        ax.plot(x, y, label=name)
    ax.set(xlabel="solves (a gradient step counts two)", ylabel="bins filled",
           title="oscillator coverage per solve (seed 0)")  # fmt: skip
    ax.legend()
    out.figure(fig, "goal_gradient.png")
    out.write(dict(rows=rows, curves=curves, budget=budget, initial=initial,
                   steps=args.steps, step_size=args.step_size))  # fmt: skip


if __name__ == "__main__":
    main()
