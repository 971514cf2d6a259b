"""Horizon: gradient norm, variance and SNR of ∇U_soft against T (fixed dt), with and
without the clip; tangent growth ‖∂s(T)/∂s(0)‖ and the Lyapunov exponent against T.
Does the gradient vanish, explode, or turn to noise?
"""

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

CONSTRAINTS = {"clip": diffgrn.Clip(), "none": diffgrn.Unconstrained()}


@eqx.filter_jit
def measure(obj, reg, keys):
    """Pathwise-gradient statistics, tangent growth and soft utility over keys."""
    samples = dg.gradient_samples(obj.loss, reg, keys)
    growth = jax.vmap(lambda k: dg.tangent_growth(obj, reg, k))(keys)
    util = jax.vmap(lambda k: obj.soft(reg, k).value)(keys)
    return dg.gradient_snr(samples), growth, util


def main(argv=None):
    args = common.parser("horizon", __doc__, model=True).parse_args(argv)
    out = common.Output("horizon", args)
    horizons = (1.0,) if args.quick else (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
    n_keys = 4 if args.quick else 16
    regulators = {"random MLP": common.new_regulator(args, jr.key(args.seed))}
    if not args.quick and args.genes == 1:
        regulators["tanh lateral inhibition"] = diffgrn.TanhRegulator(1.0, 10.0, 0.5)
    results = {}
    for rname, reg in regulators.items():
        for constraint in ("clip", "none"):
            rows = []
            for t_final in horizons:
                obj = common.base_objective(
                    args.quick, args, t_final=t_final, constraint=CONSTRAINTS[constraint]
                )
                keys = jr.split(jr.key(args.seed), n_keys)
                snr, growth, util = measure(obj, reg, keys)
                with np.errstate(divide="ignore"):
                    lyap = np.log(np.asarray(growth)) / t_final
                row = dict(
                    t_final=t_final,
                    grad_mean_norm=snr["mean_norm"],
                    grad_noise_norm=snr["noise_norm"],
                    snr=snr["snr"],
                    sample_norm=snr["sample_norm"],
                    tangent_growth_median=float(np.median(growth)),
                    tangent_growth_zero_fraction=float(np.mean(growth == 0)),
                    lyapunov_median=float(np.median(lyap)),
                    soft_utility=float(jnp.mean(util)),
                    finite=bool(np.all(np.isfinite(np.asarray(util)))),
                )
                rows.append(common.to_jsonable(row))
                print(
                    f"{rname:24s} {constraint:4s} T={t_final:5.1f} "
                    f"|g|={row['sample_norm']:.2e} snr={row['snr']} "
                    f"growth={row['tangent_growth_median']:.2e} "
                    f"λ={row['lyapunov_median']:+.3f}"
                )
            results[f"{rname} | {constraint}"] = rows

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, rows in results.items():
        ts = [r["t_final"] for r in rows]
        f = lambda k, rows=rows: [
            np.nan if r[k] is None or isinstance(r[k], str) else r[k] for r in rows
        ]
        ls = "-" if name.endswith("clip") else "--"
        axes[0].loglog(ts, np.maximum(f("sample_norm"), 1e-12), ls, marker="o", label=name)
        axes[1].loglog(ts, np.maximum(f("snr"), 1e-6), ls, marker="o", label=name)
        axes[2].semilogx(ts, f("lyapunov_median"), ls, marker="o", label=name)
    axes[0].set_ylabel("‖∇U_soft‖ per sample")
    axes[1].set_ylabel("gradient SNR ‖E g‖ / √tr Cov g")
    axes[2].set_ylabel("finite-time Lyapunov exponent (median)")
    for ax in axes:
        ax.set_xlabel("horizon T")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    out.figure(fig, "horizon.png")
    out.write(results)


if __name__ == "__main__":
    main()
