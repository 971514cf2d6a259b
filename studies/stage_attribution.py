"""Stage attribution: where along params → f → dynamics → clip → readout → KDE → U
does the gradient of the soft utility shrink?

For random and ES-trained regulators and three readouts (sigmoid, straight-through
with identity and with sigmoid surrogate), measures ‖∂U/∂·‖ at each stage, the
S_pat and S_rep parts, saturation, and the backprop adjoint ‖∂U/∂ΔW_t‖ along time.
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

STAGES = ("fates", "final_state", "initial_state", "params")


@eqx.filter_jit
def measure(obj, reg, keys):
    """Stage gradients and saturation, averaged over keys."""

    def one(key):
        st = dg.stage_gradients(obj, reg, key)
        sat = dg.saturation(obj, reg, key)
        return {**st, **{f"sat_{k}": v for k, v in sat.items()}}

    return {k: jnp.mean(v) for k, v in jax.vmap(one)(keys).items()}


adjoint_norms = eqx.filter_jit(dg.adjoint_norms)


def main(argv=None):
    args = common.parser("stage_attribution", __doc__, model=True).parse_args(argv)
    out = common.Output("stage_attribution", args)
    base = common.base_objective(args.quick, args)
    keys_n = 3 if args.quick else 8
    regulators = {
        f"random MLP {i}": common.new_regulator(args, jr.key(args.seed + i))
        for i in range(1 if args.quick else 2)
    }
    regulators["ES-trained MLP"] = common.trained_regulator(args)
    readouts = {
        "sigmoid τ=20": diffgrn.SoftReadout(20.0),
        "STE identity": diffgrn.StraightThroughReadout(),
        "STE sigmoid τ=20": diffgrn.StraightThroughReadout(diffgrn.SoftReadout(20.0)),
    }
    results, adjoints = {}, {}
    for rname, reg in regulators.items():
        for oname, readout in readouts.items():
            obj = base.replace(readout=readout)
            row = common.floats(measure(obj, reg, jr.split(jr.key(args.seed), keys_n)))
            results[f"{rname} | {oname}"] = row
            print(
                f"{rname:16s} {oname:18s} U={row['utility']:+.3f} "
                + " ".join(f"{s}={row[s]:.2e}" for s in STAGES)
                + f" at-bound={row['sat_final_at_bound']:.2f}"
            )
        adjoints[rname] = np.asarray(adjoint_norms(base, reg, jr.key(args.seed)))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = list(results)
    x = np.arange(len(STAGES) + 2)
    width = 0.8 / len(labels)
    for i, name in enumerate(labels):
        r = results[name]
        vals = [r[s] for s in STAGES] + [r["params_s_pat"], r["params_s_rep"]]
        axes[0].bar(x + i * width, np.maximum(vals, 1e-12), width, label=name)
    axes[0].set_yscale("log")
    axes[0].set_xticks(
        x + 0.4 - width / 2,
        ["∂U/∂fates", "∂U/∂s(T)", "∂U/∂s(0)", "∂U/∂θ", "∂S_pat/∂θ", "∂S_rep/∂θ"],
        fontsize=8,
    )
    axes[0].set_ylabel("gradient norm (mean over keys)")
    axes[0].legend(fontsize=6, ncol=1)
    t = np.arange(1, base.dynamics.n_steps + 1) * base.dynamics.dt
    for name, adj in adjoints.items():
        axes[1].semilogy(t, np.maximum(adj, 1e-12), label=name)
    axes[1].set_xlabel("time t")
    axes[1].set_ylabel("‖∂U_soft/∂ΔW_t‖ (σ × adjoint norm)")
    axes[1].set_title("backprop adjoint along the horizon (sigmoid readout)", fontsize=9)
    axes[1].legend(fontsize=7)
    out.figure(fig, "stage_attribution.png")
    out.write(
        dict(
            stages=results,
            adjoint_norms={k: v.tolist() for k, v in adjoints.items()},
            adjoint_times=t.tolist(),
        )
    )


if __name__ == "__main__":
    main()
