"""Gradient recipe ablation: which ingredient lets Adam on ∇U_soft leave the U = 0
plateau? From one seed's network, Adam runs with the package's recipe (output layer
initialised × 0.01, KDE bandwidth h = 0.5, 25 replicates per pathwise estimate, Adam
3e-2, clip kept) and with one ingredient changed at a time; each result is the hard
utility on fresh noise. The last row is the first version's setting.
"""

import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffgrn  # noqa: E402

from . import _common  # noqa: E402

RECIPE = dict(output_scale=0.01, bandwidth=0.5, temperature=20.0, constraint="clip",
              replicates=25, learning_rate=3e-2, backprop_steps=None, anneal=False)

VARIANTS = {
    "recipe": {},
    "init × 1 (Equinox default)": dict(output_scale=1.0),
    "h = 0.1 (model.md)": dict(bandwidth=0.1),
    "h = 0.1, 100 replicates per estimate": dict(bandwidth=0.1, replicates=100),
    "h = 1.0": dict(bandwidth=1.0),
    "h 0.5 → 0.2 (schedule)": dict(anneal=True),
    "τ = 5": dict(temperature=5.0),
    "reflect instead of clip": dict(constraint="reflect"),
    "truncated BPTT, last 200 steps": dict(backprop_steps=200),
    "100 replicates per estimate": dict(replicates=100),
    "first version (init × 1, h 0.1, lr 1e-2, R 100)": dict(
        output_scale=1.0, bandwidth=0.1, learning_rate=1e-2, replicates=100),
}
QUICK_VARIANTS = ("recipe", "h = 0.1 (model.md)")


def run(base, settings, seed, steps):
    s = dict(RECIPE, **settings)
    n = base.dynamics.n_steps
    bp = None if s["backprop_steps"] is None else min(s["backprop_steps"], n)
    obj = base.replace(
        bandwidth=s["bandwidth"], readout=diffgrn.SoftReadout(s["temperature"]),
        dynamics=base.dynamics.replace(constraint=s["constraint"], backprop_steps=bp))
    k_init, k_train = jr.split(jr.key(seed))
    reg = diffgrn.MLPRegulator(key=k_init, output_scale=s["output_scale"])
    method = diffgrn.Gradient(
        diffgrn.default_optimiser(s["learning_rate"], 1.0),
        diffgrn.Pathwise(replicates=s["replicates"]),
        bandwidth=optax.linear_schedule(0.5, 0.2, steps) if s["anneal"] else None)
    res = diffgrn.train(obj, reg, method, key=k_train, iterations=steps, progress=False,
                        select_top=3, select_repeats=3)
    fresh = diffgrn.assess(base, res.best_regulator, key=jr.key(2**31 - 1 - seed),
                           repeats=5)
    h = res.history
    hit = next((i for i, u in enumerate(h.hard_utility) if u >= 0.6), None)
    return dict(fresh_mean=fresh["mean"], fresh_std=fresh["std"],
                first_grad_norm=h.grad_norm[0] if len(h) else None,
                first_iteration_u_ge_0_6=hit, curve=h.hard_utility,
                wall_time=h.wall_time[-1] if len(h) else 0.0, error=res.error)


def main(argv=None):
    parser = _common.parser("recipe", __doc__)
    parser.add_argument("--steps", type=int, default=None,
                        help="Adam steps per variant (default 80; quick 3)")
    args = parser.parse_args(argv)
    out = _common.Output("recipe", args)
    base = _common.base_objective(args.quick)
    steps = args.steps or (3 if args.quick else 80)
    names = QUICK_VARIANTS if args.quick else tuple(VARIANTS)
    results = {}
    for name in names:
        results[name] = _common.to_jsonable(run(base, VARIANTS[name], args.seed, steps))
        r = results[name]
        print(f"{name:48s} U_hard fresh {r['fresh_mean']:.3f} ± {r['fresh_std']:.3f}  "
              f"first U≥0.6 at step {r['first_iteration_u_ge_0_6']}  "
              f"|g0| {r['first_grad_norm']:.2e}")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, r) in enumerate(results.items()):
        ax.plot(r["curve"], lw=2.2 if name == "recipe" else 1.0, label=name,
                color=f"C{i % 10}", ls="-" if i < 10 else "--")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("hard U on fresh noise (bits per cell)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    out.figure(fig, "recipe.png")
    out.write(dict(recipe=RECIPE, steps=steps, variants=results))
    return results


if __name__ == "__main__":
    main()
