"""Landscape: U_hard and U_soft along 1-D and 2-D slices of parameter space.

Slices: the line from the initial regulator θ₀ through an ES solution θ_ES, random
directions through θ_ES (scaled to ‖θ_ES − θ₀‖), and a 2-D plane through θ_ES. All
points use the same noise (common random numbers), so differences are the landscape's.
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

from . import common  # noqa: E402


def main(argv=None):
    args = common.parser("landscape", __doc__, model=True).parse_args(argv)
    out = common.Output("landscape", args)
    quick = args.quick
    n1, n2, n_keys = (9, 5, 2) if quick else (41, 15, 2)
    obj = common.base_objective(quick, args)
    reg0 = common.new_regulator(args, jr.key(args.seed))
    reg_es = common.trained_regulator(args)
    p0, static = eqx.partition(reg0, eqx.is_inexact_array)
    f0, unravel = jax.flatten_util.ravel_pytree(p0)
    fes, _ = jax.flatten_util.ravel_pytree(eqx.filter(reg_es, eqx.is_inexact_array))
    keys = jr.split(jr.key(args.seed + 1), n_keys)
    scale = float(jnp.linalg.norm(fes - f0))

    def at(flat):
        reg = eqx.combine(unravel(flat), static)
        hard, soft = jax.vmap(lambda k: obj.evaluate(reg, k))(keys)  # one simulation
        return jnp.stack([hard.value.mean(), soft.value.mean()])

    evaluate = eqx.filter_jit(lambda pts: jax.lax.map(at, pts, batch_size=8))
    rnd = jr.normal(jr.key(args.seed + 2), (2, f0.size))
    rnd = rnd / jnp.linalg.norm(rnd, axis=1, keepdims=True) * scale
    alphas = jnp.linspace(-0.5, 1.5, n1)
    betas = jnp.linspace(-1.0, 1.0, n1)
    slices = {
        "θ₀ → θ_ES": (alphas, f0[None] + alphas[:, None] * (fes - f0)[None]),
        "random 1 through θ_ES": (betas, fes[None] + betas[:, None] * rnd[0][None]),
        "random 2 through θ_ES": (betas, fes[None] + betas[:, None] * rnd[1][None]),
    }
    results = {}
    for name, (xs, pts) in slices.items():
        v = np.asarray(evaluate(pts))
        results[name] = dict(
            x=np.asarray(xs).tolist(), hard=v[:, 0].tolist(), soft=v[:, 1].tolist()
        )
        print(
            f"{name}: hard U in [{v[:, 0].min():.3f}, {v[:, 0].max():.3f}], "
            f"soft U in [{v[:, 1].min():.3f}, {v[:, 1].max():.3f}]"
        )
    grid = jnp.linspace(-1.0, 1.0, n2)
    aa, bb = jnp.meshgrid(grid, grid, indexing="ij")
    pts = fes[None] + aa.reshape(-1, 1) * rnd[0][None] + bb.reshape(-1, 1) * rnd[1][None]
    plane = np.asarray(evaluate(pts)).reshape(n2, n2, 2)
    results["plane"] = dict(
        grid=np.asarray(grid).tolist(), hard=plane[..., 0].tolist(), soft=plane[..., 1].tolist()
    )
    hard_flat = np.abs(np.diff(plane[..., 0], axis=0)) < 1e-6
    results["plane_hard_flat_fraction"] = float(np.mean(hard_flat))
    results["scale"] = scale
    corr = np.corrcoef(plane[..., 0].ravel(), plane[..., 1].ravel())[0, 1]
    results["plane_hard_soft_correlation"] = float(corr)
    print(
        f"plane: corr(hard, soft) = {corr:.3f}; neighbouring points with identical "
        f"hard U: {results['plane_hard_flat_fraction']:.2f}"
    )

    fig, axes = plt.subplots(1, 5, figsize=(22, 4))
    for ax, (name, r) in zip(axes[:3], [(k, results[k]) for k in slices]):
        ax.plot(r["x"], r["hard"], label="U_hard")
        ax.plot(r["x"], r["soft"], label="U_soft")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step along slice")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax, idx, name in ((axes[3], 0, "U_hard"), (axes[4], 1, "U_soft")):
        im = ax.imshow(plane[..., idx].T, origin="lower", extent=(-1, 1, -1, 1), cmap="viridis")
        ax.plot(0, 0, "r+")
        ax.set_title(f"{name}, plane through θ_ES", fontsize=9)
        ax.set_xlabel("random 1")
        ax.set_ylabel("random 2")
        plt.colorbar(im, ax=ax)
    out.figure(fig, "landscape.png")
    out.write(results)


if __name__ == "__main__":
    main()
