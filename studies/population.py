"""A population of gradient learners against CMA-ES: does selection among diverse
Adam learners (`diffgrn.GradientPopulation`) reach CMA-ES's level on both boundaries
of the 7-cell chain, and in no more wall time? Issue 22's targets are CMA-ES's median
fresh utility − 0.01: 0.67 open, 0.973 pinned, judged by the fair rule (the first
re-assessment whose lower 95 % bound over 10 fresh draws is above the target). All
methods at the package defaults (`Objective()`, `MLPRegulator`), the same start per
seed; prints the comparison table and the per-seed wall-time ratios against CMA-ES.
"""

import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn.compare import _markdown as markdown  # noqa: E402

from . import common  # noqa: E402

TARGETS = {"open": 0.67, "pinned": 0.973}


def methods(quick: bool, **population) -> dict:
    population = {k: v for k, v in population.items() if v is not None}
    population.setdefault("learners", 4 if quick else 8)
    pop = diffgrn.GradientPopulation(**population)
    return {"cmaes": diffgrn.CMAES(), "pbt": pop, "adam": diffgrn.Gradient()}


def main(argv=None):
    parser = common.parser("population", __doc__)
    parser.add_argument("--boundary", choices=tuple(TARGETS), default="pinned")
    parser.add_argument("--seeds", type=int, default=None, help="default 5 (quick 1)")
    parser.add_argument(
        "--iterations", type=int, default=None, help="per method (default 60; quick 2)"
    )
    parser.add_argument("--target", type=float, default=None, help="default 0.67 / 0.973")
    parser.add_argument(
        "--reassess", type=int, default=None, help="re-assess every K steps (default 5)"
    )
    parser.add_argument("--methods", default=None, help="comma-separated subset of cmaes,pbt,adam")
    for flag, kind in (("--learners", int), ("--spread", float), ("--every", int),
                       ("--replace", int), ("--fresh", int)):  # fmt: skip
        parser.add_argument(flag, type=kind, default=None, help="GradientPopulation's field")
    args = parser.parse_args(argv)
    out = common.Output("population", args)
    dyn = dict(t_final=2.0, dt=0.02) if args.quick else {}
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(7, args.boundary),
        dynamics=diffgrn.Dynamics(noise=common.noise(args), **dyn),
        replicates=32 if args.quick else 100,
    )
    target = args.target or TARGETS[args.boundary]
    fields = ("learners", "spread", "every", "replace", "fresh")
    chosen = methods(args.quick, **{f: getattr(args, f) for f in fields})
    if args.quick and not args.methods:
        args.methods = "cmaes,pbt"
    if args.methods:
        names = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in names if m not in chosen]
        if unknown or not names:
            parser.error(f"--methods: unknown {unknown}; expected a subset of {','.join(chosen)}")
        chosen = {m: chosen[m] for m in names}
    seeds = args.seeds or (1 if args.quick else 5)
    comparison = diffgrn.compare(
        objective,
        chosen,
        key=jr.key(args.seed),
        seeds=seeds,
        iterations=args.iterations or (2 if args.quick else 60),
        target=target,
        reassess=args.reassess or (1 if args.quick else 5),
        reassess_repeats=3 if args.quick else 10,
        assess_repeats=3 if args.quick else 10,
        progress=not args.quick,
    )
    table = comparison.table()
    print(markdown(table))
    speedups = comparison.speedups("cmaes") if "cmaes" in chosen else []
    if speedups:
        print(markdown(speedups))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, runs) in enumerate(comparison.runs.items()):
        for j, run in enumerate(runs):
            h = run.history
            ax.plot(
                h.wall_time, h.hard_utility, color=f"C{i}", lw=1, label=name if j == 0 else None
            )
    ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target}")
    ax.set_xlabel("wall time in steps (s)")
    ax.set_ylabel("monitored hard U (one draw)")
    ax.set_title(f"{args.boundary} chain: population of gradient learners vs CMA-ES", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    out.figure(fig, "population.png")
    fresh = {n: [f["mean"] for f in v] for n, v in comparison.fresh.items()}
    out.write(
        dict(
            boundary=args.boundary,
            target=target,
            table=table,
            speedups=speedups,
            fresh=fresh,
            methods={n: m.config() for n, m in chosen.items()},
        )
    )
    return table


if __name__ == "__main__":
    main()
