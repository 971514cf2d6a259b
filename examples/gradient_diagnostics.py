"""Gradient diagnostics on your own objective: is backpropagation usable here?

For one regulator and objective, this measures what the studies in docs/studies.md
measure: the signal-to-noise ratio of the pathwise gradient of U_soft, its agreement
(cosine) with the antithetic ES gradient of U_hard, where along the pipeline the
gradient shrinks, how much of the state sits on the clip, and how strongly the
dynamics amplify perturbations (finite-time Lyapunov exponent).

    python examples/gradient_diagnostics.py           # model.md's chain, pinned
    python examples/gradient_diagnostics.py --quick   # shorter and smaller
"""

import argparse

import equinox as eqx
import jax
import jax.random as jr

import diffgrn
from diffgrn import diagnostics as dg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T=2, dt=0.05, R=16, 8 samples")
    args = p.parse_args(argv)

    dynamics = diffgrn.Dynamics(t_final=2.0, dt=0.05) if args.quick else diffgrn.Dynamics()
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(7, boundary="pinned"),
        dynamics=dynamics,
        replicates=16 if args.quick else 100,
    )
    regulator = diffgrn.MLPRegulator(key=jr.key(0), output_scale=1.0)
    samples = 8 if args.quick else 32

    # Pathwise gradient of U_soft, one sample per noise draw: its SNR (one estimate).
    soft = lambda reg, key: objective.soft(reg, key).value
    grads = eqx.filter_jit(dg.gradient_samples)(soft, regulator, jr.split(jr.key(1), samples))
    snr = dg.gradient_snr(grads)
    print(
        f"pathwise ∇U_soft: SNR of one estimate {float(snr['snr']):.3f}, "
        f"mean norm {float(snr['mean_norm']):.3g}, noise norm {float(snr['noise_norm']):.3g}"
    )

    # Does it point where an estimator of the *hard* utility points?
    hard = lambda reg, key: objective.hard(reg, key).value
    es = eqx.filter_jit(dg.es_gradient)(hard, regulator, jr.key(2), sigma=0.05, pairs=samples)
    mean_grad = jax.tree_util.tree_map(lambda g: g.mean(axis=0), grads)  # E[∇U_soft]
    cosine = float(dg.cosine_similarity(mean_grad, es))
    print(f"cosine(mean pathwise ∇U_soft, ES ∇U_hard) = {cosine:.3f}")

    # Where along the pipeline the gradient shrinks, and how much sits on the clip.
    stages = eqx.filter_jit(dg.stage_gradients)(objective, regulator, jr.key(3))
    print("gradient norms: " + ", ".join(f"{k} {float(v):.3g}" for k, v in stages.items()))
    sat = eqx.filter_jit(dg.saturation)(objective, regulator, jr.key(4))
    print("saturation: " + ", ".join(f"{k} {float(v):.3f}" for k, v in sat.items()))
    lyap = eqx.filter_jit(dg.lyapunov_exponent)(objective, regulator, jr.key(5))
    print(
        f"finite-time Lyapunov exponent {float(lyap):.3f} per unit time "
        "(> 0: tangents explode with T)"
    )


if __name__ == "__main__":
    main()
