"""Where backpropagation wins: time-to-target against the regulator's parameter count
for Adam, CMA-ES, two evosax strategies for high dimension and random search, at
equal wall-time budgets (issue 22).

Two tasks whose optimum is known. `chain`: U on the open 7-cell chain (T = 2,
dt = 0.02, R = 32: the studies' quick objective), target 0.9 × the best median final
fresh U at the smallest size. `lattice`: teacher–student on a pinned 10 × 10 square
sheet (100 cells; σ = 0.03, every cell starting at 0.5, so the border sets the
pattern): a teacher MLP is drawn (first-layer kinks inside [0, 1]) until its
consensus pattern is reproducible on fresh draws (interior agreement ≥ 0.95, ≥ 90 %
of draws within 5 % of the cells) and not constant; students of each size are trained
to make it (`TargetPattern`, mean per-cell agreement); target: the best constant
pattern's agreement + 0.8 × (the teacher's − that).

Students are `MLPRegulator((w, w))` (s̄ only; `--widths`, default 8, 32, 128:
d = 97, 1 153, 16 897; 256 gives 66 561). Methods: `adam` (`Gradient()`: pathwise,
Adam with the width scaling of `ClippedAdam.reference_fan_in`), `cmaes` (full
covariance up to 500 parameters, evosax's Sep_CMA_ES above), `snes` and `openes`
(evosax SNES and Open_ES) and `random` (`RandomSearch`). Every run gets the same
wall-time budget of compiled steps (`--budget`, default 3 s; `train(time_budget=…)`;
compilation, monitoring and re-assessment excluded);
a run reaches the target at its first re-assessment whose lower 95 % bound over
fresh draws is ≥ the target (the fair rule, `diffgrn.compare.reached`). Seeds share
the start regulator and keys across methods. Prints the table, the speed-up of Adam
over the fastest ES per size, d* (the size from which Adam reaches the target sooner
than every ES, bracketed by the grid), and the time per step and memory of the
largest configuration. Results: docs/studies.md, "crossover".
"""

import math
import resource
import statistics
import time

import equinox as eqx
import jax
import jax.random as jr
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn.compare import _markdown as markdown  # noqa: E402
from diffgrn.compare import reached  # noqa: E402

from . import common  # noqa: E402

FULL_CMA_MAX = 500
"""Largest parameter count for full-covariance CMA-ES: its eigendecomposition is
O(d³) per generation (`jnp.linalg.eigh` of a 1153 × 1153 matrix took 8.2 s on the
shared 2-core CPU, more than a run's budget)."""

ES = ("cmaes", "snes", "openes")


def methods(d: int, replicates: int | None = None) -> dict:
    """The methods at parameter count d (`replicates`: the pathwise estimate's)."""
    estimator = diffgrn.Pathwise() if replicates is None else diffgrn.Pathwise(replicates)
    return dict(
        adam=diffgrn.Gradient(estimator=estimator),
        cmaes=diffgrn.CMAES() if d <= FULL_CMA_MAX else diffgrn.Evosax("Sep_CMA_ES"),
        snes=diffgrn.Evosax("SNES"),
        openes=diffgrn.Evosax("Open_ES"),
        random=diffgrn.RandomSearch(),
    )


def chain_task(args) -> dict:
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(7, "open"),
        dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.02, noise=common.noise(args)),
        replicates=32,
    )
    # U is monitored and re-assessed on the objective's 32 replicates: on fewer, S_rep
    # is capped at log₂ R / N and a non-reproducible regulator scores high.
    return dict(objective=objective, replicates=None, monitor=None, target=None, reference={})


def teacher(key, gain: float = 30.0) -> diffgrn.MLPRegulator:
    """A (16, 16) MLP whose first-layer tanh kinks lie inside [0, 1] (weights × `gain`,
    biases placing each kink at a uniform point): sharp enough to tell the border's
    cells from the interior's."""
    k_mlp, k_centre = jr.split(key)
    reg = diffgrn.MLPRegulator((16, 16), key=k_mlp, output_scale=1.0)
    first = reg.mlp.layers[0]
    weight = first.weight * gain
    bias = -weight.sum(axis=1) * jr.uniform(k_centre, first.bias.shape)
    first_layer = lambda r: (r.mlp.layers[0].weight, r.mlp.layers[0].bias)
    return eqx.tree_at(first_layer, reg, (weight, bias))


def lattice_task(args, draws: int = 200) -> dict:
    tissue = diffgrn.Lattice(10, 10, "square", "pinned")
    dynamics = diffgrn.Dynamics(
        t_final=2.0, dt=0.02, sigma=0.03, init_low=0.5, init_high=0.5, noise=common.noise(args)
    )
    probe = diffgrn.Objective(tissue=tissue, dynamics=dynamics, replicates=64)
    interior = ~np.asarray(tissue.pinned)
    simulate = eqx.filter_jit(lambda reg, key: probe.simulate(reg, key)[..., 0] >= 0.5)
    key = jr.fold_in(jr.key(args.seed), 22)
    for i in range(draws):
        reg = teacher(jr.fold_in(key, i))
        z = np.asarray(simulate(reg, jr.fold_in(key, 10_000 + i)))
        p = z.mean(0)
        pattern = p >= 0.5
        ones = pattern[interior].mean()
        agree = np.maximum(p, 1 - p)[interior].mean()
        if not (0.15 <= ones <= 0.85 and agree >= 0.95):
            continue
        fresh = np.asarray(simulate(reg, jr.fold_in(key, 20_000 + i)))  # the hit rate
        hit = float(((fresh == pattern).mean(1) >= 0.95).mean())
        if hit >= 0.9:
            break
    else:
        raise RuntimeError(f"crossover: no reproducible teacher in {draws} draws")
    text = "".join("1" if v else "0" for v in pattern)
    objective = diffgrn.Objective(
        tissue=tissue, dynamics=dynamics, replicates=8, utility=diffgrn.TargetPattern(text)
    )
    score = diffgrn.assess(objective, reg, key=jr.fold_in(key, 30_000), repeats=10, refine=None)
    constant = max(pattern.mean(), 1 - pattern.mean())
    target = float(constant + 0.8 * (score["mean"] - constant))
    reference = dict(
        teacher_draw=i,
        teacher_agreement=score["mean"],
        teacher_interior_agreement=float(agree),
        teacher_hit_rate_95=hit,
        constant_agreement=float(constant),
        pattern=[text[r * 10 : (r + 1) * 10] for r in range(10)],
    )
    # The agreement is a mean over replicates: 4 of them monitor it without bias.
    return dict(objective=objective, replicates=8, monitor=4, target=target, reference=reference)


TASKS = {"chain": chain_task, "lattice": lattice_task}


def chosen(d: int, replicates: int | None, args) -> dict:
    """The methods `--methods` names, at parameter count d."""
    every = methods(d, replicates)
    return {m: every[m] for m in args.methods}


def step_memory(objective, regulator, method) -> dict:
    """The compiled step's memory (XLA's analysis: arguments, outputs, temporaries)."""
    trainer = method.build(objective, regulator)
    state = trainer.init(jr.key(0))
    compiled = jax.jit(trainer.step).lower(state, jr.key(1)).compile()
    try:
        m = compiled.memory_analysis()
        total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    except (AttributeError, TypeError, NotImplementedError):  # not reported on this backend
        return {}
    return dict(step_bytes=int(total), temp_bytes=int(m.temp_size_in_bytes))


def run_task(
    name: str, task: dict, widths, seeds: int, budget: float, args, save=None
) -> list[dict]:
    """Every method at every width and seed, at the same wall-time budget; `save(rows)`
    after each width (an interrupted study keeps the widths it finished)."""
    objective = task["objective"]
    rows = []
    for w in widths:
        if save is not None and rows:
            save(rows)
        probe = diffgrn.MLPRegulator((w, w), key=jr.key(0))
        d = diffgrn.count_parameters(probe)
        for seed in range(seeds):
            k_init, k_train, k_assess = jr.split(jr.fold_in(jr.key(args.seed), seed), 3)
            start = diffgrn.MLPRegulator((w, w), key=k_init)
            for label, method in chosen(d, task["replicates"], args).items():
                t0 = time.perf_counter()
                res = diffgrn.train(
                    objective, start, method, key=k_train, iterations=100_000,
                    time_budget=budget, progress=False, eval_replicates=task["monitor"],
                    reassess=12, reassess_repeats=args.repeats, select_top=3, select_repeats=3,
                )  # fmt: skip
                fresh = diffgrn.assess(
                    objective, res.best_regulator, key=k_assess, repeats=args.repeats, refine=None
                )
                h = res.history
                rows.append(
                    dict(
                        task=name,
                        d=d,
                        width=w,
                        method=label,
                        strategy=method.name,
                        seed=seed,
                        iterations=len(h),
                        seconds_per_step=h.wall_time[-1] / len(h),
                        wall_time=h.wall_time[-1],
                        replicate_steps=h.replicate_steps[-1],
                        fresh=fresh["mean"],
                        checks=[(c["wall_time"], c["lower"]) for c in h.checks],
                        history=h,
                        real_seconds=time.perf_counter() - t0,
                    )
                )
                print(
                    f"{name} d={d} seed {seed} {label:7s} {len(h):4d} steps, "
                    f"{rows[-1]['seconds_per_step']:.3g} s/step, fresh {fresh['mean']:.3f} "
                    f"({rows[-1]['real_seconds']:.0f} s)",
                    flush=True,
                )
    return rows


def judge(rows: list[dict], target: float) -> None:
    """Time-to-target (fair rule) on each row, in place."""
    for r in rows:
        hit = reached(r["history"], target)
        r["time_to_target"] = math.inf if hit is None else hit[0]
        r["replicate_steps_to_target"] = math.inf if hit is None else hit[1]


def summarise(rows: list[dict], target: float) -> list[dict]:
    table = []
    for d in sorted({r["d"] for r in rows}):
        for m in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r["d"] == d and r["method"] == m]
            if not sel:
                continue
            times = [r["time_to_target"] for r in sel]
            table.append(
                dict(
                    d=d,
                    method=m if sel[0]["strategy"] != "evosax:Sep_CMA_ES" else "cmaes (sep)",
                    seeds=len(sel),
                    steps=statistics.median(r["iterations"] for r in sel),
                    s_per_step=statistics.median(r["seconds_per_step"] for r in sel),
                    reached=sum(math.isfinite(t) for t in times),
                    median_time_to_target=statistics.median(times),
                    fresh_median=statistics.median(r["fresh"] for r in sel),
                    fresh_min=min(r["fresh"] for r in sel),
                    fresh_max=max(r["fresh"] for r in sel),
                )
            )
    return table


def crossover(table: list[dict]) -> dict:
    """Per size: Adam's median time-to-target against the fastest ES's; d* = the
    smallest measured size from which Adam is faster at every larger measured size."""
    sizes = sorted({t["d"] for t in table})
    per_size = []
    for d in sizes:
        at = {t["method"].split(" ")[0]: t["median_time_to_target"] for t in table if t["d"] == d}
        es = min((at[m] for m in ES if m in at), default=math.inf)
        adam = at.get("adam", math.inf)
        ratio = math.nan if math.isinf(es) and math.isinf(adam) else es / adam
        per_size.append(dict(d=d, adam=adam, fastest_es=es, speedup=ratio))
    wins = [math.isfinite(p["adam"]) and p["speedup"] > 1 for p in per_size]
    d_star, bracket = None, None
    for k in range(len(sizes)):
        if all(wins[k:]):
            d_star = sizes[k]
            bracket = (sizes[k - 1] if k else None, sizes[k])
            break
    return dict(per_size=per_size, d_star=d_star, bracket=bracket)


def figure(out, results: dict, budget: float) -> None:
    tasks = list(results)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 7), squeeze=False)
    for j, name in enumerate(tasks):
        table = results[name]["table"]
        for i, m in enumerate(("adam", "cmaes", "snes", "openes", "random")):
            sel = [t for t in table if t["method"].split(" ")[0] == m]
            if not sel:
                continue
            d = [t["d"] for t in sel]
            ttt = [t["median_time_to_target"] for t in sel]
            shown = [v if math.isfinite(v) else budget * 1.3 for v in ttt]
            ax = axes[0, j]
            ax.plot(d, shown, "-o", color=f"C{i}", label=m, lw=1.2, ms=4)
            for x, v in zip(d, ttt):
                if not math.isfinite(v):
                    ax.plot(x, budget * 1.3, "x", color=f"C{i}", ms=8)
            axes[1, j].plot(d, [t["fresh_median"] for t in sel], "-o", color=f"C{i}", label=m)
        ax = axes[0, j]
        ax.axhline(budget, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("median wall time to target (s)")
        ax.set_title(
            f"{name}: target {results[name]['target']:.3g} (× = not reached in {budget:g} s)",
            fontsize=9,
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        axes[1, j].axhline(results[name]["target"], color="k", ls=":", lw=1)
        axes[1, j].set_xscale("log")
        axes[1, j].set_xlabel("regulator parameters d")
        axes[1, j].set_ylabel("median final fresh score")
        axes[1, j].grid(alpha=0.3)
    out.figure(fig, "crossover.png")


def main(argv=None):
    parser = common.parser("crossover", __doc__)
    parser.add_argument(
        "--tasks", default=None, help="comma-separated: chain,lattice (default both; quick lattice)"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of adam,cmaes,snes,openes,random (default all; "
        "quick adam,cmaes,random)",
    )
    parser.add_argument("--widths", default=None, help="MLP widths (default 8,32,128; quick 8,16)")
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds of steps per run (default 3; quick 0.3)"
    )
    parser.add_argument(
        "--target", type=float, default=None, help="every task's target (default: its rule)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="draws per check (default 5)")
    args = parser.parse_args(argv)
    tasks_option = args.tasks or ("lattice" if args.quick else "chain,lattice")
    names = [t.strip() for t in tasks_option.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        parser.error(f"--tasks: unknown {unknown}; expected a subset of {','.join(TASKS)}")
    every = list(methods(97))
    methods_option = args.methods or ("adam,cmaes,random" if args.quick else ",".join(every))
    args.methods = [m.strip() for m in methods_option.split(",") if m.strip()]
    wrong = [m for m in args.methods if m not in every]
    if wrong or not args.methods:
        parser.error(f"--methods: unknown {wrong}; expected a subset of {','.join(every)}")
    try:
        widths = [int(w) for w in (args.widths or ("8" if args.quick else "8,32,128")).split(",")]
    except ValueError:
        parser.error(f"--widths must be comma-separated integers; got {args.widths!r}")
    if any(w < 1 for w in widths):
        parser.error(f"--widths must be integers >= 1; got {args.widths}")
    seeds = args.seeds or (1 if args.quick else 3)
    budget = args.budget or (0.3 if args.quick else 3.0)
    args.repeats = args.repeats or (3 if args.quick else 5)
    for field, value, least in (("--seeds", seeds, 1), ("--repeats", args.repeats, 2)):
        if value < least:
            parser.error(f"{field} must be >= {least}; got {value}")
    if budget <= 0:
        parser.error(f"--budget must be > 0; got {budget}")
    out = common.Output("crossover", args)
    results, tasks = {}, {}

    def partial(name, task):
        def save(rows):
            runs = [{k: v for k, v in r.items() if k != "history"} for r in rows]
            done = dict(results, **{name: dict(reference=task["reference"], runs=runs)})
            out.write(dict(budget=budget, widths=widths, seeds=seeds, results=done))

        return save

    for name in names:
        task = tasks[name] = TASKS[name](args)
        rows = run_task(name, task, widths, seeds, budget, args, partial(name, task))
        target = args.target if args.target is not None else task["target"]
        if target is None:  # 0.9 × the best median final fresh U at the smallest size
            small = min(r["d"] for r in rows)
            best = max(
                statistics.median(r["fresh"] for r in rows if r["d"] == small and r["method"] == m)
                for m in dict.fromkeys(r["method"] for r in rows)
            )
            target = 0.9 * best
        judge(rows, target)
        table = summarise(rows, target)
        cross = crossover(table)
        print(f"\n{name}: target {target:.4g}", task["reference"] or "")
        print(markdown(table))
        print(markdown(cross["per_size"]))
        print(f"d* = {cross['d_star']} (between the measured sizes {cross['bracket']})")
        results[name] = dict(
            target=target,
            reference=task["reference"],
            table=table,
            crossover=cross,
            runs=[{k: v for k, v in r.items() if k != "history"} for r in rows],
        )
        out.write(dict(budget=budget, widths=widths, seeds=seeds, results=results))  # so far
    largest, name = max(widths), names[-1]  # the largest configuration: the last task's
    task = tasks[name]
    reg = diffgrn.MLPRegulator((largest, largest), key=jr.key(0))
    d = diffgrn.count_parameters(reg)
    memory = {}
    for label, method in chosen(d, task["replicates"], args).items():
        per_step = statistics.median(
            r["seconds_per_step"] for r in results[name]["runs"]
            if r["d"] == d and r["method"] == label
        )  # fmt: skip
        measured = (
            {} if args.quick and label != "adam" else step_memory(task["objective"], reg, method)
        )
        memory[label] = dict(measured, seconds_per_step=per_step)
    memory["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nlargest configuration ({name}, d = {d}):")
    for label, m in memory.items():
        if isinstance(m, dict):
            mib = m.get("step_bytes", math.nan) / 2**20
            print(f"  {label:7s} {m['seconds_per_step']:.3g} s per step, step memory {mib:.1f} MiB")
    print(f"  process peak RSS {memory['peak_rss_bytes'] / 2**30:.2f} GiB")
    figure(out, results, budget)
    out.write(dict(budget=budget, widths=widths, seeds=seeds, results=results, largest=memory))
    return results


if __name__ == "__main__":
    main()
