"""Bias: which surrogate gradient points where the hard utility actually improves?

Across sigmoid temperature τ and KDE bandwidth h, compares
- the pathwise gradient of U_soft (mean over keys),
- central finite differences of U_soft with common random numbers (same realisation
  as one pathwise sample: checks the pathwise derivative itself),
- the antithetic ES (Gaussian-smoothed) gradient of U_hard: the reference direction,
and measures the change of U_hard (common random numbers) after steps of several
lengths along each (normalised) direction.
"""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffgrn  # noqa: E402
from diffgrn import diagnostics as dg  # noqa: E402

from . import common  # noqa: E402


@eqx.filter_jit
def gradients(obj, reg, keys):
    """Pathwise samples of ∇U_soft over keys, and finite differences on keys[0]."""
    soft = lambda r, k: obj.soft(r, k).value
    return (
        dg.gradient_samples(soft, reg, keys),
        dg.finite_difference_gradient(soft, reg, keys[0], eps=1e-3),
    )


def main(argv=None):
    args = common.parser("bias", __doc__, model=True).parse_args(argv)
    out = common.Output("bias", args)
    quick = args.quick
    taus = (20.0,) if quick else (5.0, 20.0, 100.0)
    hs = (0.3,) if quick else (0.05, 0.1, 0.3)
    n_keys, pairs, n_eval = (3, 8, 4) if quick else (16, 64, 16)
    es_sigma, steps = 0.05, jnp.array([0.005, 0.02, 0.05])
    base = common.base_objective(quick, args)
    reg = common.trained_regulator(args)
    params, static = eqx.partition(reg, eqx.is_inexact_array)
    flat0, unravel = jax.flatten_util.ravel_pytree(params)
    key = jr.key(args.seed)
    k_grad, k_es, k_eval = jr.split(key, 3)
    hard = lambda r, k: base.hard(r, k).value

    g_es = eqx.filter_jit(lambda k: dg.es_gradient(hard, reg, k, sigma=es_sigma, pairs=pairs))(k_es)
    eval_keys = jr.split(k_eval, n_eval)

    @eqx.filter_jit
    def improvement(direction):
        """Mean ΔU_hard after a step of each length in `steps` along `direction`."""
        d, _ = jax.flatten_util.ravel_pytree(eqx.filter(direction, eqx.is_inexact_array))
        d = d / jnp.maximum(jnp.linalg.norm(d), 1e-30)

        def gain(step):
            moved = eqx.combine(unravel(flat0 + step * d), static)
            return jnp.mean(jax.vmap(lambda k: hard(moved, k) - hard(reg, k))(eval_keys))

        return jax.lax.map(gain, steps)

    rows = []
    for tau in taus:
        for h in hs:
            obj = base.replace(readout=diffgrn.SoftReadout(tau), bandwidth=h)
            samples, g_fd = gradients(obj, reg, jr.split(k_grad, n_keys))
            g_path = jax.tree_util.tree_map(lambda x: jnp.mean(x, 0), samples)
            one = jax.tree_util.tree_map(lambda x: x[0], samples)
            row = dict(
                tau=tau,
                h=h,
                snr=float(dg.gradient_snr(samples)["snr"]),
                cos_path_es=float(dg.cosine_similarity(g_path, g_es)),
                cos_path_fd_same_key=float(dg.cosine_similarity(one, g_fd)),
                cos_fd_es=float(dg.cosine_similarity(g_fd, g_es)),
                norm_path=float(dg.tree_norm(g_path)),
                dU_hard_path=improvement(g_path).tolist(),
            )
            rows.append(row)
            print(
                f"τ={tau:<5} h={h:<5} cos(path,ES)={row['cos_path_es']:+.3f} "
                f"cos(path,FD)={row['cos_path_fd_same_key']:+.3f} ΔU_hard(path) at "
                f"steps {steps.tolist()}: " + " ".join(f"{v:+.4f}" for v in row["dU_hard_path"])
            )
    es_gain = improvement(g_es).tolist()
    rand = jax.tree_util.tree_map(lambda x: jr.normal(jr.key(7), x.shape), params)
    rand_gain = improvement(rand).tolist()
    print(
        "ΔU_hard along the ES gradient "
        + " ".join(f"{v:+.4f}" for v in es_gain)
        + "; along a random direction "
        + " ".join(f"{v:+.4f}" for v in rand_gain)
    )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"τ={r['tau']:g}\nh={r['h']:g}" for r in rows]
    x = np.arange(len(rows))
    axes[0].bar(x - 0.2, [r["cos_path_es"] for r in rows], 0.4, label="cos(pathwise, ES)")
    axes[0].bar(
        x + 0.2,
        [r["cos_path_fd_same_key"] for r in rows],
        0.4,
        label="cos(pathwise, FD), same noise",
    )
    axes[0].set_xticks(x, labels, fontsize=7)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel("cosine similarity")
    axes[0].legend(fontsize=7)
    width = 0.8 / len(steps)
    for j, st in enumerate(steps.tolist()):
        axes[1].bar(
            x + (j - (len(steps) - 1) / 2) * width,
            [r["dU_hard_path"][j] for r in rows],
            width,
            label=f"pathwise ∇U_soft, step {st:g}",
        )
        axes[1].axhline(es_gain[j], color=f"C{j}", ls="--", lw=1, label=f"ES ∇U_hard, step {st:g}")
    axes[1].axhline(
        rand_gain[-1], color="gray", ls=":", label=f"random direction, step {steps[-1]:g}"
    )
    axes[1].set_xticks(x, labels, fontsize=7)
    axes[1].set_ylabel("ΔU_hard after a step along the direction")
    axes[1].legend(fontsize=7)
    out.figure(fig, "bias.png")
    out.write(
        dict(
            rows=rows,
            es_gain=es_gain,
            random_gain=rand_gain,
            steps=steps.tolist(),
            es_sigma=es_sigma,
            es_pairs=pairs,
            keys=n_keys,
        )
    )


if __name__ == "__main__":
    main()
