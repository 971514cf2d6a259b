"""Noise and replicates: SNR of the pathwise gradient of U_soft against σ and against
R, and the SNR of the antithetic ES estimate of ∇U_hard at the same number of
simulated replicate-steps.

Budget matching: one pathwise estimate simulates R replicates once; an ES estimate with
P antithetic pairs simulates 2P·R. Averaging k independent estimates raises the SNR by
√k, so the ES SNR is also reported per pathwise budget: SNR_ES / √(2P).
"""

import equinox as eqx
import jax
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diffgrn import diagnostics as dg  # noqa: E402

from . import common  # noqa: E402


@eqx.filter_jit
def pathwise_snr(obj, reg, keys):
    return dg.gradient_snr(dg.gradient_samples(obj.loss, reg, keys))


@eqx.filter_jit
def es_snr(obj, reg, keys, pairs, sigma):
    hard = lambda r, k: obj.hard(r, k).value
    est = lambda k: dg.es_gradient(hard, reg, k, sigma=sigma, pairs=pairs)
    return dg.gradient_snr(jax.lax.map(est, keys))


def main(argv=None):
    args = common.parser("noise_replicates", __doc__, model=True).parse_args(argv)
    out = common.Output("noise_replicates", args)
    n_keys = 4 if args.quick else 16
    sigmas = (0.01, 0.1) if args.quick else (0.001, 0.01, 0.03, 0.1, 0.3)
    reps = (32,) if args.quick else (10, 30, 100, 300)
    pairs = 2 if args.quick else 8
    es_sigma = 0.1
    base = common.base_objective(args.quick, args)
    reg = common.trained_regulator(args)
    keys = jr.split(jr.key(args.seed), n_keys)
    results = dict(sigma=[], replicates=[])
    sweeps = [
        ("sigma", sigma, base.replace(dynamics=base.dynamics.replace(sigma=sigma)))
        for sigma in sigmas
    ]
    sweeps += [("replicates", r, base.replace(replicates=r)) for r in reps]
    for name, value, obj in sweeps:
        row = {
            name: value,
            "pathwise": common.floats(pathwise_snr(obj, reg, keys)),
            "es": common.floats(es_snr(obj, reg, keys, pairs, es_sigma)),
        }
        row["es"]["snr_per_pathwise_budget"] = row["es"]["snr"] / np.sqrt(2 * pairs)
        results[name].append(row)
        print(
            f"{name}={value:<6} pathwise snr={row['pathwise']['snr']:.3f} "
            f"ES snr={row['es']['snr']:.3f} "
            f"(per budget {row['es']['snr_per_pathwise_budget']:.3f})"
        )
    results.update(es_pairs=pairs, es_sigma=es_sigma, keys=n_keys)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name, xs in ((axes[0], "sigma", sigmas), (axes[1], "replicates", reps)):
        rows = results[name]
        ax.loglog(xs, [r["pathwise"]["snr"] for r in rows], "o-", label="pathwise ∇U_soft (R reps)")
        ax.loglog(
            xs,
            [r["es"]["snr"] for r in rows],
            "s--",
            label=f"ES ∇U_hard ({pairs} pairs = {2 * pairs}×R reps)",
        )
        ax.loglog(
            xs,
            [r["es"]["snr_per_pathwise_budget"] for r in rows],
            "s:",
            label="ES, per pathwise budget (÷√(2P))",
        )
        ax.set_xlabel("noise σ" if name == "sigma" else "replicates R")
        ax.set_ylabel("gradient SNR")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    out.figure(fig, "noise_replicates.png")
    out.write(results)


if __name__ == "__main__":
    main()
