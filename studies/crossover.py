"""Where backpropagation wins: time-to-target against the regulator's parameter count
(and the tissue's size) for Adam, CMA-ES, two evosax strategies for high dimension and
random search, at equal wall-time budgets (issue 22).

Tasks whose optimum is known. `chain`: U on the open 7-cell chain (T = 2, dt = 0.02,
R = 32: the studies' quick objective), target 0.9 × the best median final fresh U at
the smallest size. `lattice`: teacher–student on a pinned 10 × 10 square sheet (100
cells; σ = 0.03, every cell starting at 0.5, so the border sets the pattern): a teacher
MLP is drawn (first-layer kinks inside [0, 1]) until its consensus pattern is
reproducible on fresh draws (interior agreement ≥ 0.95, ≥ 90 % of draws within 5 % of
the cells) and not constant; students of each size are trained to make it
(`TargetPattern`, mean per-cell agreement); target: the best constant pattern's
agreement + 0.8 × (the teacher's − that). `sizes`: the lattice task at one width
(`--size-width`, default 32: d = 1 153) on `--sizes` sides (default 5, 10, 20: N = 25,
100, 400 cells), a teacher drawn, checked and a target set per side. `trajectory`:
teacher–student fit of a trajectory on a chain of 7 cells whose ends are pinned at 1
(σ = 0.03, T = 4, dt = 0.02, every cell starting at 0.5): a teacher `MLPRegulator((8,
8))` (Equinox's initialisation) is drawn until its mean trajectory over 256 replicates
(the 5 free cells, every 10th step: 20 × 5 values) stays inside [0.05, 0.95], moves
(RMS about its time mean ≥ 0.05) and differs between cells (≥ 0.1 at the end);
students minimise `TrajectoryFit(ReferenceTrajectory(that mean), …)` on R = 8 (the
RMS distance of their replicate mean to it; lower is better); target: the teacher's
own loss on R = 8 (its noise floor) + 0.1 × (the best constant trajectory's − that).

Students are `MLPRegulator((w, w))` (s̄ only; `--widths`, default 8, 32, 128:
d = 97, 1 153, 16 897; 256 gives 66 561). Methods: `adam` (`Gradient()`, Adam with the
width scaling of `ClippedAdam.reference_fan_in`, and the estimator a pilot picks per
task: each candidate of `estimators` — pathwise on R, on R / 4, truncated to the last
quarter of the steps, inverse-variance with an antithetic ES gradient — trained once
at the smallest width, keys no study run uses, the best fresh score wins; or
`--estimator`), `cmaes` (full covariance up to 500 parameters, evosax's Sep_CMA_ES
above), `snes` and `openes` (evosax SNES and Open_ES) and `random` (`RandomSearch`).
Every run gets the same wall-time budget of compiled steps (`--budget`, default 3 s;
`train(time_budget=…)`; compilation, monitoring and re-assessment excluded); a run
reaches the target at its first re-assessment whose 95 % bound over fresh draws is
past it (the lower bound ≥ a utility's target, the upper bound ≤ a loss's: the fair
rule, `diffgrn.compare.reached`). Seeds share the start regulator and keys across
methods. Prints the table, the speed-up of Adam over the fastest ES per size, the
crossover (the size from which Adam reaches the target sooner than every ES,
bracketed by the grid), and the time per step and memory of the largest
configuration. Results: docs/studies.md, "crossover".
"""

import math
import resource
import statistics
import time

import equinox as eqx
import jax
import jax.flatten_util
import jax.random as jr
import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn.compare import _markdown as markdown  # noqa: E402
from diffgrn.compare import reached  # noqa: E402
from diffgrn.observe import ReferenceTrajectory, Trajectory  # noqa: E402

from . import common  # noqa: E402

FULL_CMA_MAX = 500
"""Largest parameter count for full-covariance CMA-ES: its eigendecomposition is
O(d³) per generation (`jnp.linalg.eigh` of a 1153 × 1153 matrix took 8.2 s on the
shared 2-core CPU, more than a run's budget)."""

ES = ("cmaes", "snes", "openes")


def methods(d: int, estimator=None) -> dict:
    """The methods at parameter count d (`estimator`: Adam's gradient estimator,
    default the objective's pathwise gradient)."""
    return dict(
        adam=diffgrn.Gradient(estimator=estimator or diffgrn.Pathwise()),
        cmaes=diffgrn.CMAES() if d <= FULL_CMA_MAX else diffgrn.Evosax("Sep_CMA_ES"),
        snes=diffgrn.Evosax("SNES"),
        openes=diffgrn.Evosax("Open_ES"),
        random=diffgrn.RandomSearch(),
    )


ESTIMATORS = ("pathwise", "few", "truncated", "inverse-variance")


def estimators(task: dict, quick: bool) -> dict:
    """Adam's candidate gradient estimators for a task (the pilot picks one): the
    pathwise gradient on the task's R replicates; on R / 4 (cheaper steps, noisier);
    truncated to the last quarter of the steps (not where the utility records a
    trajectory: it needs the whole solve); and (not quick) its per-parameter
    inverse-variance combination with an antithetic ES gradient (4 pairs; 2 batches
    of each)."""
    objective = task["objective"]
    r = task["replicates"] or objective.replicates
    out = dict(pathwise=diffgrn.Pathwise(r), few=diffgrn.Pathwise(max(2, r // 4)))
    if objective.utility.observable() is None:
        k = max(1, objective.dynamics.n_steps // 4)
        out["truncated"] = diffgrn.Pathwise(r, backprop_steps=k)
    if not quick:
        out["inverse-variance"] = diffgrn.InverseVariance(
            diffgrn.Pathwise(r), diffgrn.AntitheticES(pairs=4), batches=2
        )
    return out


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


def lattice_task(args, side: int = 10, draws: int = 200) -> dict:
    """Teacher–student on a pinned `side` × `side` square sheet (see the docstring)."""
    tissue = diffgrn.Lattice(side, side, "square", "pinned")
    dynamics = diffgrn.Dynamics(
        t_final=2.0, dt=0.02, sigma=0.03, init_low=0.5, init_high=0.5, noise=common.noise(args)
    )
    probe = diffgrn.Objective(tissue=tissue, dynamics=dynamics, replicates=64)
    interior = ~np.asarray(tissue.pinned)
    simulate = eqx.filter_jit(lambda reg, key: probe.simulate(reg, key)[..., 0] >= 0.5)
    key = jr.fold_in(jr.key(args.seed), 22)
    hard = getattr(args, "hard_teacher", False)
    guesses = random_students(args, key) if hard else []
    rejected = 0
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
        if hit < 0.9:
            continue
        if hard:  # a pattern random search's draws do not already make
            constant = max(pattern.mean(), 1 - pattern.mean())
            goal = constant + 0.8 * ((fresh == pattern).mean() - constant)
            k = jr.fold_in(key, 50_000 + i)
            best = max(float((np.asarray(simulate(g, k)) == pattern).mean()) for g in guesses)
            if best >= goal:
                rejected += 1
                continue
        break
    else:
        easy = f", {rejected} rejected as made by random search's draws" if hard else ""
        raise RuntimeError(
            f"crossover: no reproducible teacher in {draws} draws ({side}²{easy}); "
            "try another --seed"
        )
    text = "".join("1" if v else "0" for v in pattern)
    objective = diffgrn.Objective(
        tissue=tissue, dynamics=dynamics, replicates=8, utility=diffgrn.TargetPattern(text)
    )
    score = diffgrn.assess(objective, reg, key=jr.fold_in(key, 30_000), repeats=10, refine=None)
    constant = max(pattern.mean(), 1 - pattern.mean())
    target = float(constant + 0.8 * (score["mean"] - constant))
    reference = dict(
        n_cells=side * side,
        teacher_draw=i,
        teacher_agreement=score["mean"],
        teacher_interior_agreement=float(agree),
        teacher_hit_rate_95=hit,
        constant_agreement=float(constant),
        pattern=[text[r * side : (r + 1) * side] for r in range(side)],
    )
    if hard:
        reference.update(hard_teacher=True, rejected_as_easy=rejected, random_students=len(guesses))
    # The agreement is a mean over replicates: 4 of them monitor it without bias.
    return dict(objective=objective, replicates=8, monitor=4, target=target, reference=reference)


def random_students(args, key, n: int = 256, width: int = 8) -> list:
    """`n` draws of `RandomSearch`'s distribution around the study's first start at
    `width` (its own `ask`: θ₀ + z, z ~ N(0, I)): what "a pattern random networks make"
    means for `--hard-teacher`."""
    start = diffgrn.MLPRegulator(
        (width, width), key=jr.split(jr.fold_in(jr.key(args.seed), 0), 3)[0]
    )
    params, static = eqx.partition(start, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    search = diffgrn.RandomSearch(population=n + 1)
    draws, _ = search.ask(search.init(key, flat), jr.fold_in(key, 60_000))
    return [eqx.combine(unravel(x), static) for x in draws[1:]]  # [0]: the incumbent


TRAJECTORY_CELLS = 7
"""The trajectory task's chain: 7 cells, the two ends pinned at 1 (5 recorded)."""


def trajectory_task(args, draws: int = 200) -> dict:
    """Teacher–student fit of a trajectory on a pinned chain (see the docstring)."""
    n = TRAJECTORY_CELLS
    tissue = diffgrn.Chain(n, "pinned", pinned_value=1.0)
    dynamics = diffgrn.Dynamics(
        t_final=4.0, dt=0.02, sigma=0.03, init_low=0.5, init_high=0.5, noise=common.noise(args)
    )
    observe = Trajectory(every=10, cells=tuple(range(1, n - 1)))
    probe = diffgrn.Objective(tissue=tissue, dynamics=dynamics, replicates=256)
    simulate = eqx.filter_jit(lambda reg, key: probe.simulate(reg, key, observe=observe))
    key = jr.fold_in(jr.key(args.seed), 23)
    for i in range(draws):
        reg = diffgrn.MLPRegulator((8, 8), key=jr.fold_in(key, i), output_scale=1.0)
        mean = np.asarray(simulate(reg, jr.fold_in(key, 10_000 + i))).mean(0)
        constant = float(np.sqrt(np.mean((mean - mean.mean(0)) ** 2)))  # best constant fit
        spread = float(np.ptp(mean[-1], axis=0).max())  # between cells at the end
        if 0.05 <= mean.min() and mean.max() <= 0.95 and constant >= 0.05 and spread >= 0.1:
            break
    else:
        raise RuntimeError(f"crossover: no trajectory teacher in {draws} draws")
    loss = ReferenceTrajectory(mean)
    objective = diffgrn.Objective(
        tissue=tissue,
        dynamics=dynamics,
        replicates=8,
        utility=diffgrn.TrajectoryFit(loss, observe),
    )
    k = jr.fold_in(key, 30_000)
    own = diffgrn.assess(objective, reg, key=k, repeats=10, refine=None)
    start = diffgrn.MLPRegulator((8, 8), key=jr.fold_in(key, 40_000))
    untrained = diffgrn.assess(objective, start, key=k, repeats=10, refine=None)
    target = float(own["mean"] + 0.1 * (constant - own["mean"]))
    reference = dict(
        n_cells=n,
        teacher_draw=i,
        teacher_loss=own["mean"],
        constant_loss=constant,
        untrained_loss=untrained["mean"],
        cell_spread=spread,
        mean_trajectory=mean[..., 0].round(4).tolist(),
    )
    return dict(objective=objective, replicates=8, monitor=None, target=target, reference=reference)


TASKS = {"chain": chain_task, "lattice": lattice_task, "trajectory": trajectory_task, "sizes": None}
"""`sizes`: the lattice task at one width (`--size-width`) for each side in `--sizes`."""


def chosen(d: int, estimator, args) -> dict:
    """The methods `--methods` names, at parameter count d."""
    every = methods(d, estimator)
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


def one_run(task: dict, start, method, k_train, k_assess, budget: float, args):
    """One budgeted training run and its fresh assessment."""
    res = diffgrn.train(
        task["objective"], start, method, key=k_train, iterations=100_000,
        time_budget=budget, progress=False, eval_replicates=task["monitor"],
        reassess=12, reassess_repeats=args.repeats, select_top=3, select_repeats=3,
    )  # fmt: skip
    fresh = diffgrn.assess(
        task["objective"], res.best_regulator, key=k_assess, repeats=args.repeats, refine=None
    )
    return res, fresh


TIE = 1e-3
"""Pilot scores closer than this are reported as a tie."""


def pilot(task: dict, width: int, budget: float, args) -> dict:
    """Adam with each candidate estimator (`estimators`) at `width`, one seed (keys no
    study run uses), at the study's budget: the one of best fresh score is Adam's for
    the task."""
    sign = task["objective"].direction
    key = jr.fold_in(jr.key(args.seed), 777)
    k_init, k_train, k_assess = jr.split(key, 3)
    start = diffgrn.MLPRegulator((width, width), key=k_init)
    scores = {}
    for label, est in estimators(task, args.quick).items():
        res, fresh = one_run(task, start, diffgrn.Gradient(estimator=est), k_train, k_assess,
                             budget, args)  # fmt: skip
        scores[label] = dict(fresh=fresh["mean"], steps=len(res.history))
        print(f"  pilot {label:16s} {len(res.history):4d} steps, fresh {fresh['mean']:.4g}")
    value = lambda k: -math.inf if math.isnan(scores[k]["fresh"]) else sign * scores[k]["fresh"]
    best = max(scores, key=value)
    tied = [k for k in scores if k != best and value(best) - value(k) <= TIE]
    if tied:  # one seed cannot tell these apart: the pick is the first maximum, not a finding
        print(f"  pilot: {best} ties with {', '.join(tied)} (within {TIE:g})")
    return dict(chosen=best, width=width, scores=scores, tied=tied)


def run_task(
    name: str, task: dict, widths, seeds: int, budget: float, args, save=None, estimator=None
) -> list[dict]:
    """Every method at every width and seed, at the same wall-time budget; `save(rows)`
    after each width (an interrupted study keeps the widths it finished)."""
    rows = []
    for w in widths:
        if save is not None and rows:
            save(rows)
        probe = diffgrn.MLPRegulator((w, w), key=jr.key(0))
        d = diffgrn.count_parameters(probe)
        for seed in range(seeds):
            k_init, k_train, k_assess = jr.split(jr.fold_in(jr.key(args.seed), seed), 3)
            start = diffgrn.MLPRegulator((w, w), key=k_init)
            for label, method in chosen(d, estimator, args).items():
                t0 = time.perf_counter()
                res, fresh = one_run(task, start, method, k_train, k_assess, budget, args)
                h = res.history
                rows.append(
                    dict(
                        task=name,
                        n_cells=task["objective"].n_cells,
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
                        checks=[(c["wall_time"], c["lower"], c["upper"]) for c in h.checks],
                        history=h,
                        real_seconds=time.perf_counter() - t0,
                    )
                )
                print(
                    f"{name} N={rows[-1]['n_cells']} d={d} seed {seed} {label:7s} "
                    f"{len(h):4d} steps, {rows[-1]['seconds_per_step']:.3g} s/step, "
                    f"fresh {fresh['mean']:.4g} ({rows[-1]['real_seconds']:.0f} s)",
                    flush=True,
                )
    return rows


def judge(rows: list[dict], target: float, direction: int = 1) -> None:
    """Time-to-target (fair rule: the 95 % bound on the far side past the target) on
    each row, in place."""
    for r in rows:
        hit = reached(r["history"], target, direction)
        r["time_to_target"] = math.inf if hit is None else hit[0]
        r["replicate_steps_to_target"] = math.inf if hit is None else hit[1]


def summarise(rows: list[dict], estimator: str | None = None) -> list[dict]:
    """One row per (tissue size, parameter count, method). Not `Comparison.table`: the
    median time-to-target here counts a seed that missed as ∞ (a censored median over
    all seeds), where `Comparison` takes the median over the seeds that reached it."""
    table = []
    for n, d in sorted({(r["n_cells"], r["d"]) for r in rows}):
        for m in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if (r["n_cells"], r["d"]) == (n, d) and r["method"] == m]
            if not sel:
                continue
            times = [r["time_to_target"] for r in sel]
            label = m if sel[0]["strategy"] != "evosax:Sep_CMA_ES" else "cmaes (sep)"
            if m == "adam" and estimator is not None:
                label = f"adam ({estimator})"
            table.append(
                dict(
                    n_cells=n,
                    d=d,
                    method=label,
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


def crossover(table: list[dict], along: str = "d") -> dict:
    """Per size (`along`: "d" or "n_cells"): Adam's median time-to-target against the
    fastest ES's; the crossover = the smallest measured size from which Adam is faster
    at every larger measured size."""
    sizes = sorted({t[along] for t in table})
    per_size = []
    for x in sizes:
        at = {t["method"].split(" ")[0]: t["median_time_to_target"] for t in table if t[along] == x}
        es = min((at[m] for m in ES if m in at), default=math.inf)
        adam = at.get("adam", math.inf)
        ratio = math.nan if math.isinf(es) and math.isinf(adam) else es / adam
        per_size.append({along: x, "adam": adam, "fastest_es": es, "speedup": ratio})
    wins = [math.isfinite(p["adam"]) and p["speedup"] > 1 for p in per_size]
    star, bracket = None, None
    for k in range(len(sizes)):
        if all(wins[k:]):
            star = sizes[k]
            bracket = (sizes[k - 1] if k else None, sizes[k])
            break
    return dict(per_size=per_size, d_star=star, along=along, bracket=bracket)


METHOD_ORDER = ("adam", "cmaes", "snes", "openes", "random")


def _curves(ax_time, ax_fresh, table, along: str, budget: float) -> None:
    for i, m in enumerate(METHOD_ORDER):
        sel = [t for t in table if t["method"].split(" ")[0] == m]
        if not sel:
            continue
        x = [t[along] for t in sel]
        ttt = [t["median_time_to_target"] for t in sel]
        shown = [v if math.isfinite(v) else budget * 1.3 for v in ttt]
        ax_time.plot(x, shown, "-o", color=f"C{i}", label=sel[0]["method"], lw=1.2, ms=4)
        for xx, v in zip(x, ttt):
            if not math.isfinite(v):
                ax_time.plot(xx, budget * 1.3, "x", color=f"C{i}", ms=8)
        ax_fresh.plot(x, [t["fresh_median"] for t in sel], "-o", color=f"C{i}", label=m)


def figure(out, results: dict, budget: float, filename="crossover.png", along="d") -> None:
    tasks = list(results)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 7), squeeze=False)
    for j, name in enumerate(tasks):
        _curves(axes[0, j], axes[1, j], results[name]["table"], along, budget)
        ax = axes[0, j]
        ax.axhline(budget, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("median wall time to target (s)")
        target = results[name]["target"]
        shown = f"{target:.3g}" if not isinstance(target, dict) else "per size"
        ax.set_title(f"{name}: target {shown} (× = not reached in {budget:g} s)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        if not isinstance(target, dict):
            axes[1, j].axhline(target, color="k", ls=":", lw=1)
        else:  # one target per size
            xs = sorted(target, key=float)
            axes[1, j].plot([float(x) for x in xs], [target[x] for x in xs], "k_", ms=14)
        axes[1, j].set_xscale("log")
        sizes = sorted({t[along] for t in results[name]["table"]})
        for a in axes[:, j]:  # the measured sizes as plain tick labels
            a.set_xticks(sizes, [f"{x:,}".replace(",", " ") for x in sizes])
            a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axes[1, j].set_xlabel("regulator parameters d" if along == "d" else "cells N")
        axes[1, j].set_ylabel("median final fresh score")
        axes[1, j].grid(alpha=0.3)
    out.figure(fig, filename)


def print_result(name: str, target, reference, table, cross) -> None:
    print(f"\n{name}: target {target}", reference or "")
    print(markdown(table))
    print(markdown(cross["per_size"]))
    print(f"crossover at {cross['along']} = {cross['d_star']} (bracket {cross['bracket']})")


def main(argv=None):
    parser = common.parser("crossover", __doc__)
    parser.add_argument(
        "--tasks",
        default=None,
        help="comma-separated: chain,lattice,trajectory,sizes (default chain,lattice,"
        "trajectory; quick lattice)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of adam,cmaes,snes,openes,random (default all; "
        "quick adam,cmaes,random)",
    )
    parser.add_argument("--widths", default=None, help="MLP widths (default 8,32,128; quick 8,16)")
    parser.add_argument(
        "--sizes",
        default=None,
        help="lattice sides for the sizes task (default 5,10,20; quick 5,7)",
    )
    parser.add_argument(
        "--size-width", type=int, default=None, help="the sizes task's width (default 32; quick 8)"
    )
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds of steps per run (default 3; quick 0.3)"
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="every task's target, every side's for sizes (default: its rule)",
    )
    parser.add_argument(
        "--estimator",
        default=None,
        help="Adam's estimator, skipping the pilot: pathwise, few, truncated or inverse-variance "
        "(default: the pilot's pick per task)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="draws per check (default 5)")
    parser.add_argument(
        "--hard-teacher",
        action="store_true",
        help="lattice tasks: skip teachers whose pattern one of 256 random-search draws "
        "(around the width-8 start) already makes to the target",
    )
    args = parser.parse_args(argv)
    tasks_option = args.tasks or ("lattice" if args.quick else "chain,lattice,trajectory")
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

    def integers(field, value, default, least):
        try:
            out = [int(w) for w in (value or default).split(",")]
        except ValueError:
            parser.error(f"{field} must be comma-separated integers; got {value!r}")
        if any(w < least for w in out):
            parser.error(f"{field} must be integers >= {least}; got {value}")
        return out

    widths = integers("--widths", args.widths, "8" if args.quick else "8,32,128", 1)
    sides = integers("--sizes", args.sizes, "5,7" if args.quick else "5,10,20", 5)
    size_width = args.size_width or (8 if args.quick else 32)
    seeds = args.seeds or (1 if args.quick else 3)
    budget = args.budget or (0.3 if args.quick else 3.0)
    args.repeats = args.repeats or (3 if args.quick else 5)
    for field, value, least in (
        ("--seeds", seeds, 1), ("--repeats", args.repeats, 2), ("--size-width", size_width, 1)
    ):  # fmt: skip
        if field == "--seeds" and value > 777:  # the pilot's keys are seed 777's
            parser.error(f"--seeds must be at most 777 (the estimator pilot's keys); got {value}")
        if value < least:
            parser.error(f"{field} must be >= {least}; got {value}")
    if budget <= 0:
        parser.error(f"--budget must be > 0; got {budget}")
    if args.estimator is not None and args.estimator not in ESTIMATORS:
        parser.error(f"--estimator: unknown {args.estimator!r}; expected one of {ESTIMATORS}")
    if args.estimator == "truncated" and "trajectory" in names:
        parser.error(
            "--estimator truncated does not apply to the trajectory task (its utility "
            "records the whole solve): give pathwise, few or inverse-variance"
        )
    out = common.Output("crossover", args)
    results, tasks = {}, {}
    config = dict(budget=budget, widths=widths, seeds=seeds, sizes=sides, size_width=size_width)

    def partial(name, task):
        def save(rows):
            runs = [{k: v for k, v in r.items() if k != "history"} for r in rows]
            done = dict(results, **{name: dict(reference=task["reference"], runs=runs)})
            out.write(dict(config, results=done))

        return save

    def estimator_for(task, width):
        """Adam's estimator for a task: `--estimator`, or the pilot's pick."""
        if args.estimator is None and "adam" not in args.methods:  # nothing to pick for
            return "pathwise", estimators(task, True)["pathwise"], None
        if args.estimator is not None:
            every = estimators(task, False)
            if args.estimator not in every:
                raise ValueError(f"--estimator {args.estimator} does not apply to this task")
            return args.estimator, every[args.estimator], None
        print(f"estimator pilot (width {width}, {budget:g} s each):")
        p = pilot(task, width, budget, args)
        return p["chosen"], estimators(task, args.quick)[p["chosen"]], p

    for name in names:
        if name == "sizes":
            results[name] = sizes_sweep(args, sides, size_width, seeds, budget, estimator_for)
            tasks[name] = results[name].pop("_task")
            out.write(dict(config, results=results))
            continue
        task = tasks[name] = TASKS[name](args)
        est_name, est, pilot_record = estimator_for(task, min(widths))
        task["estimator"] = est
        rows = run_task(name, task, widths, seeds, budget, args, partial(name, task), est)
        direction = task["objective"].direction
        target = args.target if args.target is not None else task["target"]
        if target is None:  # 0.9 × the best median final fresh U at the smallest size
            small = min(r["d"] for r in rows)
            best = max(
                statistics.median(r["fresh"] for r in rows if r["d"] == small and r["method"] == m)
                for m in dict.fromkeys(r["method"] for r in rows)
            )
            target = 0.9 * best
        judge(rows, target, direction)
        table = summarise(rows, est_name)
        cross = crossover(table)
        print_result(name, f"{target:.4g}", task["reference"], table, cross)
        results[name] = dict(
            target=target,
            direction=direction,
            estimator=est_name,
            pilot=pilot_record,
            reference=task["reference"],
            table=table,
            crossover=cross,
            runs=[{k: v for k, v in r.items() if k != "history"} for r in rows],
        )
        out.write(dict(config, results=results))  # so far
    name = names[-1]  # the largest configuration: the last task's
    task = tasks[name]
    largest = size_width if name == "sizes" else max(widths)
    reg = diffgrn.MLPRegulator((largest, largest), key=jr.key(0))
    d = diffgrn.count_parameters(reg)
    runs = results[name]["runs"]
    n_cells = max(r["n_cells"] for r in runs)
    memory = {}
    for label, method in chosen(d, task["estimator"], args).items():
        per_step = statistics.median(
            r["seconds_per_step"] for r in runs
            if r["d"] == d and r["method"] == label and r["n_cells"] == n_cells
        )  # fmt: skip
        measured = (
            {} if args.quick and label != "adam" else step_memory(task["objective"], reg, method)
        )
        memory[label] = dict(measured, seconds_per_step=per_step)
    memory["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nlargest configuration ({name}, N = {n_cells}, d = {d}):")
    for label, m in memory.items():
        if isinstance(m, dict):
            mib = m.get("step_bytes", math.nan) / 2**20
            print(f"  {label:7s} {m['seconds_per_step']:.3g} s per step, step memory {mib:.1f} MiB")
    print(f"  process peak RSS {memory['peak_rss_bytes'] / 2**30:.2f} GiB")
    by_d = {k: v for k, v in results.items() if k != "sizes"}
    if by_d:
        figure(out, by_d, budget)
    if "sizes" in results:
        figure(out, {"sizes": results["sizes"]}, budget, "crossover_sizes.png", "n_cells")
    out.write(dict(config, results=results, largest=memory))
    return results


def sizes_sweep(args, sides, width: int, seeds: int, budget: float, estimator_for) -> dict:
    """The lattice task at one width for each side (a teacher drawn and checked per
    side, its own target); Adam's estimator piloted on the smallest side."""
    rows, targets, references, est = [], {}, {}, None
    for side in sides:
        task = lattice_task(args, side)
        if est is None:
            est_name, est, pilot_record = estimator_for(task, width)
        task["estimator"] = est
        part = run_task(f"lattice {side}x{side}", task, [width], seeds, budget, args, None, est)
        target = args.target if args.target is not None else task["target"]
        judge(part, target, task["objective"].direction)
        n = side * side
        targets[n], references[n] = target, task["reference"]
        rows += part
    table = summarise(rows, est_name)
    for t in table:
        t["target"] = targets[t["n_cells"]]
    cross = crossover(table, "n_cells")
    print_result("sizes", targets, references, table, cross)
    return dict(
        target=targets,
        direction=1,
        estimator=est_name,
        pilot=pilot_record,
        reference=references,
        table=table,
        crossover=cross,
        runs=[{k: v for k, v in r.items() if k != "history"} for r in rows],
        _task=task,
    )


if __name__ == "__main__":
    main()
