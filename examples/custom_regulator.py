"""Your own regulator: a Hill-function repressor written as a `diffgrn.AbstractRegulator`.

    ds_i/dt = v / (1 + (s̄_i / K)^n) − s_i

each cell makes its gene at a rate repressed by its neighbours' mean s̄ and degrades it
(lateral inhibition with 3 trainable parameters v, K, n). Any Equinox module with
`__call__(s, sbar)` on arrays of shape `(..., genes)` works: the trainers, estimators
and diagnostics treat its array fields as parameters.

    python examples/custom_regulator.py           # CMA-ES, 100 generations
    python examples/custom_regulator.py --quick   # a short run
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr

import diffgrn


class HillRepressor(diffgrn.AbstractRegulator):
    log_v: jax.Array  # production rate v = exp(log_v)
    log_k: jax.Array  # repression threshold K = exp(log_k)
    log_n: jax.Array  # Hill coefficient n = exp(log_n)

    def __init__(self, v=1.0, k=0.5, n=2.0):
        self.log_v, self.log_k, self.log_n = (jnp.log(jnp.asarray(x, float)) for x in (v, k, n))

    def __call__(self, s, sbar):  # s, sbar: (..., 1); positivity through the logs
        v, k, n = jnp.exp(self.log_v), jnp.exp(self.log_k), jnp.exp(self.log_n)
        return v / (1.0 + (sbar / k) ** n) - s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T=5, dt=0.02, R=32, 15 generations")
    args = p.parse_args(argv)

    dynamics = diffgrn.Dynamics(t_final=5.0, dt=0.02) if args.quick else diffgrn.Dynamics()
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(7, boundary="open"),
        dynamics=dynamics,
        replicates=32 if args.quick else 100,
    )
    regulator = HillRepressor()
    objective.check_regulator(regulator)  # shapes and genes checked before any training

    before = diffgrn.assess(objective, regulator, key=jr.key(99))
    result = diffgrn.train(
        objective, regulator, "cmaes", key=jr.key(0), iterations=15 if args.quick else 100
    )
    after = diffgrn.assess(objective, result.best_regulator, key=jr.key(99))
    best = result.best_regulator
    print(f"U_hard on fresh noise: {before['mean']:.3f} at the start, {after['mean']:.3f} trained")
    print(
        "trained v = {:.3f}, K = {:.3f}, n = {:.3f}".format(
            *(float(jnp.exp(x)) for x in (best.log_v, best.log_k, best.log_n))
        )
    )
    # Euler must resolve the regulator: dt · max |∂f/∂(s, s̄)| well below 1.
    print(f"dt · max|f'| = {float(diffgrn.diagnostics.stiffness(best, dynamics.dt)):.3f}")


if __name__ == "__main__":
    main()
