"""Traps: why a gradient method stays where it stops. For a 'trapped' regulator (where
Adam stopped) and an 'escaped' one (a better optimum another method found), measures
the hard utility and its patterns, how many final states sit on a wall of the clip,
the pathwise gradient of U_soft with the clip, with reflection and with the soft
clip (`Dynamics(constraint=SoftClip())`, sharpness 100), the ES-smoothed
gradient of U_hard, and U_hard along the straight line between the two.

Without --trapped/--escaped it uses two reference regulators on the pinned chain:
f ≈ +10 everywhere (every free cell driven to 1: the pattern 0111110) and the tanh
lateral-inhibition curve a = 3, b = 3 (0101010). Pass saved regulators, e.g.
`--trapped runs/compare-pinned/adam-seed0/best`
`--escaped runs/compare-pinned/cmaes-seed0/best`.
"""

import collections
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn import diagnostics as dg  # noqa: E402

from . import common  # noqa: E402

CONSTRAINTS = {
    "clip": diffgrn.Clip(),
    "reflect": diffgrn.Reflect(),
    "softclip": diffgrn.SoftClip(sharpness=100.0),
}


@eqx.filter_jit
def probe(obj, reg, keys, pairs):
    hard = jax.vmap(lambda k: obj.hard(reg, k).value)(keys)
    soft = jax.vmap(lambda k: obj.soft(reg, k).value)(keys)
    grads = jax.vmap(lambda k: dg.tree_norm(eqx.filter_grad(obj.loss)(reg, k)))(keys)
    es = dg.es_gradient(lambda r, k: obj.hard(r, k).value, reg, keys[0], sigma=0.05, pairs=pairs)
    return dict(
        hard=jnp.mean(hard),
        soft=jnp.mean(soft),
        pathwise_norm_mean=jnp.mean(grads),
        pathwise_exact_zero_fraction=jnp.mean(grads == 0.0),
        es_gradient_norm=dg.tree_norm(es),
        **dg.saturation(obj, reg, keys[0]),
    )


@eqx.filter_jit
def line(obj, a, b, alphas, keys):
    pa, static = eqx.partition(a, eqx.is_inexact_array)
    pb = eqx.filter(b, eqx.is_inexact_array)

    def at(alpha):
        p = jax.tree.map(lambda x, y: (1 - alpha) * x + alpha * y, pa, pb)
        reg = eqx.combine(p, static)
        return jnp.mean(jax.vmap(lambda k: obj.hard(reg, k).value)(keys))

    return jax.lax.map(at, alphas)


def patterns(obj, reg, key, top=3):
    z = np.asarray(eqx.filter_jit(obj.simulate)(reg, key))[..., 0] >= 0.5
    count = collections.Counter("".join("1" if v else "0" for v in row) for row in z)
    return [(p, n / len(z)) for p, n in count.most_common(top)]


def main(argv=None):
    parser = common.parser("traps", __doc__)
    parser.add_argument("--trapped", type=Path, default=None)
    parser.add_argument("--escaped", type=Path, default=None)
    parser.add_argument(
        "--boundary", default=None, help="default: the saved regulators' boundary, else pinned"
    )
    args = parser.parse_args(argv)
    out = common.Output("traps", args)
    regs, boundary = {}, args.boundary
    refs = (
        ("trapped", args.trapped, diffgrn.TanhRegulator(10.0, -10.0, -1.0)),
        ("escaped", args.escaped, diffgrn.TanhRegulator(3.0, 3.0, 0.5)),
    )
    for name, path, ref in refs:
        if path is None:
            regs[name] = ref
        else:
            saved = diffgrn.load(path)
            regs[name] = saved.regulator
            boundary = boundary or saved.config["objective"]["tissue"]["boundary"]
    boundary = boundary or "pinned"
    base = common.base_objective(args.quick, args).replace(
        tissue=diffgrn.Chain(7, boundary), bandwidth=0.5
    )
    keys = jr.split(jr.key(args.seed), 2 if args.quick else 8)
    results = dict(boundary=boundary)
    for name, reg in regs.items():
        row = {}
        for constraint in ("clip",) if args.quick else tuple(CONSTRAINTS):
            obj = base.replace(dynamics=base.dynamics.replace(constraint=CONSTRAINTS[constraint]))
            row[constraint] = common.floats(probe(obj, reg, keys, 2 if args.quick else 16))
        row["patterns"] = patterns(base, reg, jr.key(args.seed + 1))
        results[name] = row
        c = row["clip"]
        reflect = row.get("reflect", {}).get("pathwise_norm_mean", float("nan"))
        soft_clip = row.get("softclip", {}).get("pathwise_norm_mean", float("nan"))
        print(
            f"{name}: U_hard {c['hard']:.3f}, U_soft {c['soft']:.3f}, patterns "
            f"{row['patterns']}, final states on a wall {c['final_at_bound']:.2f}, "
            f"|∇U_soft| clip {c['pathwise_norm_mean']:.2e} (exactly 0 on "
            f"{c['pathwise_exact_zero_fraction']:.0%} of draws), reflect {reflect:.2e},"
            f" soft clip {soft_clip:.2e},"
            f" |ES grad U_hard| {c['es_gradient_norm']:.2e}"
        )
    alphas = jnp.linspace(-0.25, 1.25, 7 if args.quick else 25)
    u = np.asarray(line(base, regs["trapped"], regs["escaped"], alphas, keys))
    results["line"] = dict(alpha=np.asarray(alphas), hard=u)
    print("U_hard along trapped → escaped:", np.round(u, 3))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.asarray(alphas), u, marker="o")
    ax.axvline(0, color="k", lw=0.6, ls=":")
    ax.axvline(1, color="k", lw=0.6, ls=":")
    ax.set_xlabel("α: (1 − α)·θ_trapped + α·θ_escaped")
    ax.set_ylabel("hard U (bits per cell)")
    ax.set_title(f"{boundary} boundary")
    ax.grid(alpha=0.3)
    out.figure(fig, "traps.png")
    out.write(results)
    return results


if __name__ == "__main__":
    main()
