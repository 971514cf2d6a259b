"""Discovery: how many patterns curiosity-driven exploration (IMGEP) finds against
random search at the same number of simulations (7-cell chain, open and pinned, and a
lattice), and whether Adam reaches a chosen target pattern more often from the
explorer's nearest discovery than from a random start.
"""

import json

import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn import plotting  # noqa: E402
from diffgrn.discovery import IMGEP, RandomExploration, explore  # noqa: E402
from diffgrn.utility import ExactHits, TargetPattern  # noqa: E402

from . import common  # noqa: E402

LATTICE_DESCRIPTORS = "fraction,like,dominant"


def objective(tissue, quick: bool, noise=None) -> diffgrn.Objective:
    """model.md's dynamics (T = 20, dt = 0.01, σ = 0.1) on `tissue`, 50 replicates per
    simulation (quick: T = 2, dt = 0.05, 16 replicates)."""
    dyn = dict(t_final=2.0, dt=0.05) if quick else {}
    dyn["noise"] = noise or diffgrn.CounterNoise()
    return diffgrn.Objective(
        tissue=tissue, dynamics=diffgrn.Dynamics(**dyn), replicates=16 if quick else 50
    )


def coverage(args, out) -> tuple[dict, dict]:
    """IMGEP and random search per tissue and seed: the coverage curves and bins."""
    lattice = [int(v) for v in args.lattice.lower().split("x")]
    tissues = {
        "chain-open": (diffgrn.Chain(7, "open"), None, args.seeds),
        "chain-pinned": (diffgrn.Chain(7, "pinned"), None, args.seeds),
        f"hex{args.lattice}-open": (
            diffgrn.Lattice(*lattice, "hex", "open"),
            LATTICE_DESCRIPTORS,
            args.lattice_seeds,
        ),
    }
    results, kept = {}, {}
    for name, (tissue, descriptors, seeds) in tissues.items():
        obj = objective(tissue, args.quick, common.noise(args))
        rows = []
        for seed in range(seeds):
            reg = diffgrn.MLPRegulator(key=jr.key(seed))
            libs = {}
            for method, strategy in (("imgep", IMGEP()), ("random", RandomExploration())):
                libs[method] = explore(
                    obj,
                    reg,
                    strategy,
                    budget=args.budget,
                    key=jr.fold_in(jr.key(seed), 1),
                    descriptors=descriptors,
                    progress=False,
                )
            row = dict(
                seed=seed,
                imgep=libs["imgep"].filled(),
                random=libs["random"].filled(),
                curves={m: lib.coverage for m, lib in libs.items()},
            )
            row["ratio"] = row["imgep"] / max(1, row["random"])
            rows.append(row)
            print(f"{name} seed {seed}: imgep {row['imgep']} bins, random {row['random']} bins")
            if seed == 0:
                kept[name] = (libs, obj)
        results[name] = dict(
            descriptors=kept[name][0]["imgep"].names, bins=20, budget=args.budget, seeds=rows
        )
    fig, axes = plt.subplots(1, len(kept), figsize=(5 * len(kept), 3.8))
    for ax, (name, (libs, _)) in zip(np.atleast_1d(axes), kept.items()):
        plotting.plot_coverage(libs, ax)
        ax.set_title(f"{name}, seed 0", fontsize=10)
    out.figure(fig, "discovery.png")
    for name, (libs, obj) in kept.items():
        fig = plotting.plot_gallery(libs["imgep"], obj.tissue, count=8)
        out.figure(fig, f"gallery-{name}.png")
        out.figure(
            plotting.plot_descriptor_space(libs["imgep"], f"imgep, {name}, seed 0"),
            f"descriptors-{name}.png",
        )
        libs["imgep"].save(out.dir / f"library-{name}-imgep")
    return results, {k: v[0]["imgep"] for k, v in kept.items()}


def finetune(args, library) -> list[dict]:
    """Adam toward random target patterns on the open chain, from a random start and
    from the IMGEP library's nearest discovery, the same number of steps each.

    The targets are palindromes: a regulator of the neighbours' mean on a chain with
    independent initial states is mirror-symmetric, so a pattern and its mirror image
    are equally likely and an asymmetric pattern cannot be made by more than half of
    the replicates."""
    rng = np.random.default_rng(args.seed)
    n = 7
    targets = []
    while len(targets) < min(args.targets, 2 ** ((n + 1) // 2)):
        half = "".join(str(b) for b in rng.integers(0, 2, (n + 1) // 2))
        t = half + half[: n // 2][::-1]
        if t not in targets:
            targets.append(t)
    base = objective(diffgrn.Chain(n, "open"), args.quick, common.noise(args))
    rows = []
    for i, target in enumerate(targets):
        obj = base.replace(utility=TargetPattern(target))
        hit = base.replace(utility=TargetPattern(target, ExactHits()))
        near = library.nearest_pattern(target)
        starts = {
            "random start": diffgrn.MLPRegulator(key=jr.fold_in(jr.key(args.seed), 100 + i)),
            "nearest discovery": library.regulator(near),
        }
        row = dict(
            target=target,
            nearest_pattern="".join(str(int(b)) for b in library.patterns[near]),
        )
        for name, start in starts.items():
            fresh = jr.fold_in(jr.key(args.seed), 10_000 + i)
            u0 = _fresh(hit, start, fresh)
            res = diffgrn.train(
                obj, start, "adam", key=jr.key(i), iterations=args.steps, progress=False
            )
            reg = res.best_regulator
            agreement, hits = _fresh(hit, reg, fresh)
            row[name] = dict(start_hit=u0[1], hit=hits, agreement=agreement, error=res.error)
        rows.append(row)
        r, d = row["random start"], row["nearest discovery"]
        print(
            f"target {target} (nearest found {row['nearest_pattern']}): hit fraction "
            f"random start {r['start_hit']:.2f} -> {r['hit']:.2f} (agreement "
            f"{r['agreement']:.2f}), nearest discovery {d['start_hit']:.2f} -> {d['hit']:.2f} "
            f"(agreement {d['agreement']:.2f})"
        )
    return rows


def _fresh(obj, reg, key) -> tuple[float, float]:
    """(mean agreement, mean exact-hit fraction) on 5 fresh draws from `key`."""
    a = diffgrn.assess(obj, reg, key=key, repeats=5, refine=None)
    return a["agreement"], a["exact_hits"]


def main(argv=None):
    p = common.parser("discovery", __doc__)
    p.add_argument("--budget", type=int, default=None, help="simulations (None: 2000; 48 quick)")
    p.add_argument("--seeds", type=int, default=None, help="chain seeds (None: 3; 1 quick)")
    p.add_argument("--lattice", default="6x6", help="the hex lattice, ROWSxCOLS")
    p.add_argument("--lattice-seeds", type=int, default=1)
    p.add_argument("--targets", type=int, default=None, help="target patterns (None: 10; 2)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps (None: 100; 5 quick)")
    p.add_argument(
        "--parts",
        default="coverage,finetune",
        help="coverage, finetune or both; finetune alone reuses --out's saved open-chain library",
    )
    args = p.parse_args(argv)
    q = args.quick
    args.budget = args.budget or (48 if q else 2000)
    args.seeds = args.seeds or (1 if q else 3)
    args.targets = args.targets or (2 if q else 10)
    args.steps = args.steps or (5 if q else 100)
    if q:
        args.lattice = "3x3"
    out = common.Output("discovery", args)
    parts = {p.strip() for p in args.parts.split(",")}
    if not parts or parts - {"coverage", "finetune"}:
        raise SystemExit(f"--parts: coverage, finetune or both; got {args.parts!r}")
    previous = out.dir / "results.json"
    if "coverage" in parts:
        cov, libraries = coverage(args, out)
        chain = libraries["chain-open"]
    else:
        from diffgrn.discovery import load_library

        cov = json.loads(previous.read_text())["results"]["coverage"]
        chain = load_library(out.dir / "library-chain-open-imgep")
    tune = finetune(args, chain) if "finetune" in parts else []
    summary = {
        name: dict(
            imgep=[r["imgep"] for r in c["seeds"]],
            random=[r["random"] for r in c["seeds"]],
            ratio=[r["ratio"] for r in c["seeds"]],
        )
        for name, c in cov.items()
    }
    for start in ("random start", "nearest discovery"):
        hits = [r[start]["hit"] for r in tune]
        summary[f"finetune {start}"] = dict(
            success=sum(h >= 0.5 for h in hits),
            targets=len(hits),
            median_hit=float(np.median(hits)) if hits else None,
            median_agreement=float(np.median([r[start]["agreement"] for r in tune]))
            if tune
            else None,
        )
    print(summary)
    out.write(dict(coverage=cov, finetune=tune, summary=summary))


if __name__ == "__main__":
    main()
