"""Quick start: an evolution strategy against Adam on the first model (model.md).

A chain of 7 cells, one gene each, open boundary; the regulator is an Equinox MLP of
the neighbours' mean. The ES trains on the exact (hard) utility, Adam on the soft
(differentiable) one; both are judged the same way, on fresh noise.

    python examples/quick_start.py            # model.md's defaults (a few minutes)
    python examples/quick_start.py --quick    # a short, small run (under a minute)
"""

import argparse

import jax.random as jr

import diffgrn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T=2, dt=0.05, R=16, 15 iterations")
    args = p.parse_args(argv)

    # 1. The objective: tissue → regulator → SDE → readout → utility, in one object.
    if args.quick:
        dynamics = diffgrn.Dynamics(t_final=2.0, dt=0.05)  # model.md: T = 20, dt = 0.01
        objective = diffgrn.Objective(tissue=diffgrn.Chain(7), dynamics=dynamics, replicates=16)
        iterations = 15
    else:
        objective = diffgrn.Objective(tissue=diffgrn.Chain(7, boundary="open"))
        iterations = 200

    # 2. One starting regulator for both methods (1 → 8 → 8 → 1 MLP, tanh).
    regulator = diffgrn.MLPRegulator(key=jr.key(0))

    # 3. Train: "es" is the (μ+λ)-ES on U_hard, "adam" is Optax Adam on ∇U_soft.
    results = {
        name: diffgrn.train(objective, regulator, name, key=jr.key(1), iterations=iterations)
        for name in ("es", "adam")
    }

    # 4. Judge both on fresh noise (keys no training step used): mean ± std of U_hard.
    for name, result in results.items():
        fresh = diffgrn.assess(objective, result.best_regulator, key=jr.key(99))
        print(
            f"{name:5s} U_hard on fresh noise = {fresh['mean']:.3f} ± {fresh['std']:.3f} "
            f"(S_pat {fresh['s_pat']:.3f}, S_rep {fresh['s_rep']:.3f}); "
            f"{result.history.replicate_steps[-1]:.3g} simulated replicate-steps"
        )

    # 5. Save the ES's regulator (Equinox serialisation + JSON config, no pickle).
    diffgrn.save("quick_start_es", results["es"].best_regulator, results["es"].config)
    print("saved quick_start_es/ (load it with diffgrn.load)")


if __name__ == "__main__":
    main()
