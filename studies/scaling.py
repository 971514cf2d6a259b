"""Scaling: does the gradient finding transfer to large and 2-D tissues?

For a chain and for square and hexagonal lattices (open boundary) of about 10², 10³
and 10⁴ cells, with the same regulators (a random MLP, one trained by the ES on
model.md's 7-cell chain, and the 3-parameter tanh lateral inhibition
a·tanh(−b(s̄ − c)), a = 1, b = 10, c = 0.5, whose ES gradient is well estimated in 3
dimensions, so its cosine is the reliable one): the norm and signal-to-noise ratio of
the pathwise gradient of U_soft, the cosine between its mean and the antithetic ES
gradient of U_hard, and the soft and hard utilities. Noise is drawn inside each step
(`CounterNoise()`, the default), so memory stays O(R·N) at 10⁴ cells.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn import diagnostics as dg  # noqa: E402

from . import common  # noqa: E402

SIZES = dict(
    chain=(100, 1024, 10_000),
    square=((10, 10), (32, 32), (100, 100)),
    hex=((10, 10), (32, 32), (100, 100)),
)
QUICK_SIZES = dict(chain=(16,), square=((4, 4),), hex=((4, 4),))


def tissue(geometry: str, size) -> diffgrn.Tissue:
    if geometry == "chain":
        return diffgrn.Chain(size, "open")
    return diffgrn.Lattice(*size, geometry=geometry, boundary="open")


@eqx.filter_jit
def pathwise(obj, reg, keys):
    soft = lambda r, k: obj.soft(r, k).value
    samples = dg.gradient_samples(soft, reg, keys)
    mean = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), samples)
    util = jax.vmap(lambda k: obj.soft(reg, k).value)(keys)
    return dg.gradient_snr(samples), mean, jnp.mean(util)


@eqx.filter_jit
def es(obj, reg, keys, sigma, pairs):
    hard = lambda r, k: obj.hard(r, k).value
    grads = jax.lax.map(lambda k: dg.es_gradient(hard, reg, k, sigma=sigma, pairs=pairs), keys)
    mean = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads)
    util = jax.lax.map(lambda k: obj.hard(reg, k).value, keys)
    return mean, jnp.mean(util)


def main(argv=None):
    parser = common.parser("scaling", __doc__)
    parser.add_argument("--t-final", type=float, default=None, help="T (default 5; quick 1)")
    args = parser.parse_args(argv)
    out = common.Output("scaling", args)
    quick = args.quick
    t_final = args.t_final or (1.0 if quick else 5.0)
    dynamics = diffgrn.Dynamics(
        t_final=t_final, dt=0.05 if quick else 0.01, noise=common.noise(args)
    )
    replicates = 8 if quick else 16
    n_keys, es_keys, pairs, es_sigma = (2, 1, 2, 0.05) if quick else (8, 2, 8, 0.05)
    regulators = {
        "random MLP": diffgrn.MLPRegulator(key=jr.key(args.seed), output_scale=1.0),
        "tanh lateral inhibition": diffgrn.TanhRegulator(1.0, 10.0, 0.5),
    }
    if not quick:
        regulators["ES-trained (7-cell chain)"] = common.trained_regulator(args)
    keys = jr.split(jr.key(args.seed + 1), n_keys)
    k_es = jr.split(jr.key(args.seed + 2), es_keys)
    results = {}
    for geometry, sizes in (QUICK_SIZES if quick else SIZES).items():
        for size in sizes:
            t = tissue(geometry, size)
            obj = diffgrn.Objective(
                tissue=t, dynamics=dynamics, bandwidth=0.1, replicates=replicates
            )
            for rname, reg in regulators.items():
                snr, g_path, u_soft = pathwise(obj, reg, keys)
                g_es, u_hard = es(obj, reg, k_es, es_sigma, pairs)
                row = dict(
                    geometry=geometry,
                    cells=t.n_cells,
                    regulator=rname,
                    snr=snr["snr"],
                    grad_mean_norm=snr["mean_norm"],
                    grad_noise_norm=snr["noise_norm"],
                    sample_norm=snr["sample_norm"],
                    es_norm=dg.tree_norm(g_es),
                    cosine_pathwise_es=dg.cosine_similarity(g_path, g_es),
                    soft_utility=u_soft,
                    hard_utility=u_hard,
                )
                row = common.to_jsonable(row)
                results.setdefault(f"{rname} | {geometry}", []).append(row)
                print(
                    f"{rname:26s} {geometry:6s} N={t.n_cells:6d} |g|={row['sample_norm']:.2e} "
                    f"snr={row['snr']:.3f} cos(path, ES)={row['cosine_pathwise_es']:+.3f} "
                    f"U_soft={row['soft_utility']:.3f} U_hard={row['hard_utility']:.3f}"
                )
    settings = dict(
        t_final=t_final,
        dt=dynamics.dt,
        sigma=dynamics.sigma,
        replicates=replicates,
        keys=n_keys,
        es_keys=es_keys,
        es_pairs=pairs,
        es_sigma=es_sigma,
        boundary="open",
    )

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    styles = dict(chain="o", square="s", hex="^")
    for name, rows in results.items():
        rname, geometry = name.split(" | ")
        ls = {"random MLP": "-", "tanh lateral inhibition": ":"}.get(rname, "--")
        n = [r["cells"] for r in rows]
        kw = dict(marker=styles[geometry], ls=ls, color=f"C{list(styles).index(geometry)}")
        axes[0].loglog(n, [max(r["sample_norm"], 1e-12) for r in rows], label=name, **kw)
        axes[1].loglog(n, [max(r["snr"], 1e-6) for r in rows], label=name, **kw)
        axes[2].semilogx(n, [r["cosine_pathwise_es"] for r in rows], label=name, **kw)
    axes[0].set_ylabel("‖∇U_soft‖ per sample")
    axes[1].set_ylabel("gradient SNR (one estimate)")
    axes[2].set_ylabel("cos(mean pathwise ∇U_soft, ES ∇U_hard)")
    axes[2].axhline(0, color="k", lw=0.5)
    for ax in axes:
        ax.set_xlabel("cells N")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"open boundary, T = {t_final:g}, dt = {dynamics.dt:g}, R = {replicates}; "
        "solid: random MLP, dotted: tanh, dashed: ES-trained on the 7-cell chain",
        fontsize=9,
    )
    out.figure(fig, "scaling.png")
    out.write(dict(settings=settings, rows=results))


if __name__ == "__main__":
    main()
