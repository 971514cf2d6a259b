"""Gradient recipe ablation: which ingredient lets Adam on ∇U_soft leave the U = 0
plateau (open boundary) or the 0111110 optimum (--boundary pinned)? From one seed's
network, Adam runs with the package's recipe (output layer initialised × 0.01, KDE
bandwidth h = 0.5, τ = 20, 25 replicates per pathwise estimate, Adam 3e-2, clip kept)
and with one ingredient changed at a time; each result is the hard utility on fresh
noise, and the first step whose monitored hard utility reached --threshold.
"""

import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import diffgrn  # noqa: E402

from . import common  # noqa: E402

RECIPE = dict(
    output_scale=0.01,
    bandwidth=0.5,
    temperature=20.0,
    constraint=diffgrn.Clip(),
    replicates=25,
    learning_rate=3e-2,
    backprop_steps=None,
    bandwidth_schedule=None,
    temperature_schedule=None,
)

VARIANTS = {
    "recipe": {},
    "init × 1 (Equinox default)": dict(output_scale=1.0),
    "h = 0.1 (model.md)": dict(bandwidth=0.1),
    "h = 0.1, 100 replicates per estimate": dict(bandwidth=0.1, replicates=100),
    "h = 1.0": dict(bandwidth=1.0),
    "h 0.5 → 0.2 (schedule)": dict(bandwidth_schedule=(0.5, 0.2)),
    "h = 2.0": dict(bandwidth=2.0),
    "h = 2.0, τ = 10": dict(bandwidth=2.0, temperature=10.0),
    "h 2 → 0.5, τ 10 → 20 (schedule)": dict(
        bandwidth_schedule=(2.0, 0.5), temperature_schedule=(10.0, 20.0)
    ),
    "τ = 10": dict(temperature=10.0),
    "Adam 3e-3": dict(learning_rate=3e-3),
    "τ = 5": dict(temperature=5.0),
    "reflect instead of clip": dict(constraint=diffgrn.Reflect()),
    "soft clip instead of clip": dict(constraint=diffgrn.SoftClip()),
    "truncated BPTT, last 200 steps": dict(backprop_steps=200),
    "100 replicates per estimate": dict(replicates=100),
    "first version (init × 1, h 0.1, lr 1e-2, R 100)": dict(
        output_scale=1.0, bandwidth=0.1, learning_rate=1e-2, replicates=100
    ),
}
QUICK_VARIANTS = ("recipe", "h = 0.1 (model.md)")
PINNED_VARIANTS = (
    "recipe",
    "h = 1.0",
    "h = 2.0",
    "τ = 10",
    "h = 2.0, τ = 10",
    "h 2 → 0.5, τ 10 → 20 (schedule)",
    "Adam 3e-3",
    "τ = 5",
)


def _schedule(ends, steps):
    """Linear from ends[0] to ends[1] over the first three quarters of the steps."""
    return None if ends is None else diffgrn.LinearSchedule(*ends, max(1, 3 * steps // 4))


def run(base, settings, seed, steps, threshold=0.6):
    s = dict(RECIPE, **settings)
    obj = base.replace(
        bandwidth=s["bandwidth"],
        readout=diffgrn.SoftReadout(s["temperature"]),
        dynamics=base.dynamics.replace(constraint=s["constraint"]),
    )
    k_init, k_train = jr.split(jr.key(seed))
    reg = diffgrn.MLPRegulator(key=k_init, output_scale=s["output_scale"])
    method = diffgrn.Gradient(
        diffgrn.default_optimiser(s["learning_rate"], 1.0),
        diffgrn.Pathwise(replicates=s["replicates"], backprop_steps=s["backprop_steps"]),
        temperature=_schedule(s["temperature_schedule"], steps),
        bandwidth=_schedule(s["bandwidth_schedule"], steps),
    )
    res = diffgrn.train(
        obj,
        reg,
        method,
        key=k_train,
        iterations=steps,
        progress=False,
        select_top=3,
        select_repeats=3,
    )
    fresh = diffgrn.assess(base, res.best_regulator, key=jr.key(2**31 - 1 - seed), repeats=5)
    h = res.history
    hit = next((i for i, u in enumerate(h.hard_utility) if u >= threshold), None)
    return dict(
        fresh_mean=fresh["mean"],
        fresh_std=fresh["std"],
        first_grad_norm=h.grad_norm[0] if len(h) else None,
        first_iteration_at_threshold=hit,
        curve=h.hard_utility,
        wall_time=h.wall_time[-1] if len(h) else 0.0,
        error=res.error,
    )


def main(argv=None):
    parser = common.parser("recipe", __doc__)
    parser.add_argument(
        "--steps", type=int, default=None, help="Adam steps per variant (default 80; quick 3)"
    )
    parser.add_argument(
        "--boundary",
        choices=("open", "pinned"),
        default="open",
        help="pinned runs the bandwidth/temperature variants only",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="utility for 'first step at threshold' (default 0.6 open, 0.95 pinned)",
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="run only these variants, separated by ';' (names as in the printed table)",
    )
    args = parser.parse_args(argv)
    out = common.Output("recipe", args)
    base = common.base_objective(args.quick, args)
    base = base.replace(tissue=diffgrn.Chain(base.tissue.n_cells, args.boundary))
    threshold = args.threshold or (0.6 if args.boundary == "open" else 0.95)
    steps = args.steps or (3 if args.quick else 80)
    names = (
        QUICK_VARIANTS
        if args.quick
        else PINNED_VARIANTS
        if args.boundary == "pinned"
        else tuple(VARIANTS)
    )
    if args.variants is not None:
        names = tuple(v.strip() for v in args.variants.split(";") if v.strip())
        unknown = [v for v in names if v not in VARIANTS]
        if unknown or not names:
            parser.error(
                f"--variants: unknown {unknown}; expected names from {'; '.join(VARIANTS)}"
            )
    results = {}
    for name in names:
        results[name] = common.to_jsonable(run(base, VARIANTS[name], args.seed, steps, threshold))
        r = results[name]
        print(
            f"{name:48s} U_hard fresh {r['fresh_mean']:.3f} ± {r['fresh_std']:.3f}  "
            f"first U≥{threshold} at step {r['first_iteration_at_threshold']}  "
            f"|g0| {r['first_grad_norm']:.2e}"
        )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, r) in enumerate(results.items()):
        ax.plot(
            r["curve"],
            lw=2.2 if name == "recipe" else 1.0,
            label=name,
            color=f"C{i % 10}",
            ls="-" if i < 10 else "--",
        )
    ax.set_xlabel("Adam step")
    ax.set_ylabel("hard U on fresh noise (bits per cell)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    out.figure(fig, "recipe.png")
    out.write(
        dict(
            recipe=RECIPE,
            boundary=args.boundary,
            threshold=threshold,
            steps=steps,
            variants=results,
        )
    )
    return results


if __name__ == "__main__":
    main()
