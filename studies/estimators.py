"""Estimators: bias and variance of every gradient estimator of E[U_hard], against T, σ and N.

For the 3-parameter tanh lateral inhibition a·tanh(−b(s̄ − c)) (a = 1, b = 6, c = 0.4)
on the open 7-cell chain (N cells in the N sweep), the ground truth ∇E[U_hard] is a
central difference of E[U_hard] with common random numbers over many batches of R
replicates (E[U] depends on R, so every batch has the objective's R). Each estimator
is drawn on independent keys: its mean gives the bias (cosine with the ground truth,
relative error), its spread the variance; "variance × cost" (trace of the covariance
of one estimate times its simulated replicate-steps) compares them at equal compute.
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

from . import common  # noqa: E402


def estimators() -> dict:
    lr = diffgrn.LikelihoodRatio()
    es = diffgrn.AntitheticES(sigma=0.05, pairs=8)
    return {
        "pathwise (∇U_soft)": diffgrn.Pathwise(),
        "likelihood ratio": lr,
        "antithetic ES": es,
        "inverse-variance (LR, ES)": diffgrn.InverseVariance(lr, es, batches=4),
    }


def ground_truth(objective, regulator, keys, eps=0.05):
    params, static = eqx.partition(regulator, eqx.is_inexact_array)
    flat0, _ = jax.flatten_util.ravel_pytree(params)
    unravel = jax.flatten_util.ravel_pytree(params)[1]
    hard = lambda x, k: objective.hard(eqx.combine(unravel(x), static), k).value

    @eqx.filter_jit
    def fd(k):
        basis = jnp.eye(flat0.size) * eps
        return jax.vmap(lambda e: hard(flat0 + e, k) - hard(flat0 - e, k))(basis) / (2 * eps)

    x = np.asarray(jax.lax.map(fd, keys))
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(len(x))


def draws(estimator, objective, regulator, keys):
    f = eqx.filter_jit(
        lambda k: jax.flatten_util.ravel_pytree(
            eqx.filter(estimator(objective, regulator, k)[0], eqx.is_inexact_array)
        )[0]
    )
    return np.asarray(jax.lax.map(f, keys))


def main(argv=None):
    args = common.parser("estimators", __doc__).parse_args(argv)
    out = common.Output("estimators", args)
    quick = args.quick
    horizons = (1.0,) if quick else (1.0, 2.0, 5.0, 10.0)
    sigmas = (0.1,) if quick else (0.03, 0.1, 0.3)
    cells = (5,) if quick else (7, 20, 50)
    n_truth, n_draws = (200, 16) if quick else (3000, 200)
    replicates, dt = 16, 0.02
    reg = diffgrn.TanhRegulator(1.0, 6.0, 0.4)
    rows = []
    sweeps = [("t_final", t, dict(t_final=t, sigma=0.1)) for t in horizons]
    sweeps += [("sigma", s, dict(t_final=2.0 if not quick else 1.0, sigma=s)) for s in sigmas]
    sweeps += [("cells", n, dict(t_final=2.0 if not quick else 1.0, sigma=0.1)) for n in cells]
    solved = {}  # (cells, T, σ) → the truth and the draws: the sweeps share points
    for name, value, dyn in sweeps:
        cells_n = value if name == "cells" else 7
        point = (cells_n, dyn["t_final"], dyn["sigma"])
        if point not in solved:
            objective = diffgrn.Objective(
                tissue=diffgrn.Chain(cells_n, "open"),
                dynamics=diffgrn.Dynamics(dt=dt, noise=common.noise(args), **dyn),
                replicates=replicates,
                bandwidth=0.5,
            )
            keys = jr.split(jr.key(args.seed + 1), n_draws)
            solved[point] = (
                objective,
                ground_truth(objective, reg, jr.split(jr.key(args.seed), n_truth)),
                {e: draws(est, objective, reg, keys) for e, est in estimators().items()},
            )
        objective, (truth, truth_se), sampled = solved[point]
        for ename, est in estimators().items():
            x = sampled[ename]
            mean = x.mean(0)
            cos = float(mean @ truth / (np.linalg.norm(mean) * np.linalg.norm(truth) + 1e-30))
            rel = float(np.linalg.norm(mean - truth) / (np.linalg.norm(truth) + 1e-30))
            var = float(np.sum(x.var(0, ddof=1)))
            cost = est.cost(objective)
            row = dict(
                sweep=name,
                value=value,
                estimator=ename,
                cosine=cos,
                relative_error=rel,
                variance=var,
                cost=cost,
                variance_x_cost=var * cost,
                truth=truth.tolist(),
                truth_se=truth_se.tolist(),
                mean=mean.tolist(),
            )
            rows.append(row)
            print(
                f"{name}={value:<5} {ename:28s} cos={cos:+.3f} rel.err={rel:.2f} "
                f"var={var:.3g} var×cost={var * cost:.3g}"
            )

    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    labels = dict(t_final="horizon T", sigma="noise σ", cells="cells N (T = 2, σ = 0.1)")
    for col, sweep in enumerate(("t_final", "sigma", "cells")):
        for ename in estimators():
            sel = [r for r in rows if r["sweep"] == sweep and r["estimator"] == ename]
            xs = [r["value"] for r in sel]
            axes[0, col].semilogx(xs, [r["cosine"] for r in sel], "o-", label=ename)
            axes[1, col].loglog(xs, [r["variance_x_cost"] for r in sel], "o-", label=ename)
        axes[0, col].set_ylabel("cos(mean estimate, ∇E[U_hard])")
        axes[1, col].set_ylabel("variance × replicate-steps per estimate")
        for ax in axes[:, col]:
            ax.set_xlabel(labels[sweep])
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        "tanh a=1, b=6, c=0.4, open 7-cell chain, R = 16, dt = 0.02; "
        f"truth: central differences over {n_truth} batches",
        fontsize=9,
    )
    out.figure(fig, "estimators.png")
    out.write(dict(rows=rows, replicates=replicates, dt=dt, truth_batches=n_truth,
                   draws=n_draws))  # fmt: skip


if __name__ == "__main__":
    main()
