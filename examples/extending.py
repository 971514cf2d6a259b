"""Your own pieces, each one class in this one file: a regulator, a gradient
estimator, a noise model, a population trainer and a pattern descriptor.

Each subclasses diffgrn's abstract base for its kind, is used through `train` or
`explore` like the built-in ones, and is saved (the regulator with `diffgrn.save`,
the others as their JSON `config()`) and loaded back in a fresh Python process, which
finds the classes in this file by itself (`diffgrn.config` records where they live).

    python examples/extending.py           # a few minutes on 2 CPU cores
    python examples/extending.py --quick   # seconds
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr

import diffgrn
from diffgrn.brownian import AbstractStepPath
from diffgrn.discovery import AbstractDescriptor


# 1. A regulator: lateral inhibition f(s̄) = a·(1 − s̄)² − b·s with trainable a, b.
class SquareInhibition(diffgrn.AbstractRegulator):
    a: jax.Array
    b: jax.Array

    def __init__(self, a=1.0, b=1.0):
        self.a, self.b = jnp.asarray(a, float), jnp.asarray(b, float)

    def __call__(self, s, sbar):
        return self.a * (1.0 - sbar) ** 2 - self.b * s


# 2. A gradient estimator: SPSA (simultaneous perturbation) of the hard utility, two
#    simulations per random ±1 direction, on common noise.
class SPSA(diffgrn.estimators.AbstractEstimator):
    scale: float = eqx.field(static=True, default=0.05)
    directions: int = eqx.field(static=True, default=4)

    def __call__(self, objective, regulator, key):
        params, static = eqx.partition(regulator, eqx.is_inexact_array)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        k_dir, k_sim = jr.split(key)
        u = lambda x: objective.hard(eqx.combine(unravel(x), static), k_sim).value

        def one(k):
            d = jr.rademacher(k, flat.shape).astype(flat.dtype)
            return (u(flat + self.scale * d) - u(flat - self.scale * d)) / (2 * self.scale) * d

        g = jnp.mean(jax.vmap(one)(jr.split(k_dir, self.directions)), axis=0)
        return unravel(g), jnp.nan  # (ascent direction, no soft utility to log)

    def cost(self, objective):
        return 2 * self.directions * objective.replicate_steps


# 3. A noise model: antithetic Brownian paths (replicate r + R/2 gets −ΔW of
#    replicate r), a variance reduction for estimates averaged over replicates.
class _MirroredPath(AbstractStepPath):
    inner: AbstractStepPath

    @property
    def t0(self):
        return self.inner.t0

    @property
    def t1(self):
        return self.inner.t1

    @property
    def dt(self):
        return self.inner.dt

    @property
    def n_steps(self):
        return self.inner.n_steps

    @property
    def levy_area(self):
        return self.inner.levy_area

    def increment(self, k):
        inc = self.inner.increment(k)
        return jnp.concatenate([inc, -inc])


class AntitheticNoise(diffgrn.AbstractNoise):
    def path(self, keys, shape, t_final, dt):
        half = keys.shape[0] // 2
        if 2 * half != keys.shape[0]:
            raise ValueError("AntitheticNoise needs an even number of replicates")
        return _MirroredPath(diffgrn.CounterNoise().path(keys[:half], shape, t_final, dt))


# 4. A population trainer: the (1+1)-ES with the 1/5th success rule; only ask/tell.
class OnePlusOne(diffgrn.AbstractPopulationMethod):
    step_size: float = eqx.field(static=True, default=0.1)

    def init(self, key, x0):
        return dict(mean=x0, sigma=jnp.asarray(self.step_size), best=jnp.asarray(-jnp.inf))

    def ask(self, state, key):
        child = state["mean"] + state["sigma"] * jr.normal(key, state["mean"].shape)
        return jnp.stack([state["mean"], child]), state

    def tell(self, state, population, fitness, key):
        better = fitness[1] > fitness[0]
        return dict(
            mean=jnp.where(better, population[1], population[0]),
            sigma=state["sigma"] * jnp.where(better, 1.5, 1.5**-0.25),
            best=jnp.maximum(fitness[0], fitness[1]),
        )


# 5. A descriptor for `explore`: the mean final state of gene 0, in [0, 1].
class MeanLevel(AbstractDescriptor):
    def __call__(self, fates, states, pairs):
        return jnp.mean(states[..., 0])

    def bounds(self, objective):
        return 0.0, 1.0


def check_in_fresh_process(folder: Path) -> None:
    """Load everything back in a new interpreter and compare with what was saved."""
    code = f"""
import json, jax.numpy as jnp, diffgrn
folder = {str(folder)!r}
saved = diffgrn.load(folder)
reg = saved.regulator
s = jnp.linspace(0, 1, 5)[:, None]
want = json.loads(open(folder + "/expected.json").read())
assert type(reg).__name__ == "SquareInhibition", type(reg)
assert jnp.allclose(reg(s, s).ravel(), jnp.asarray(want["f"]), atol=1e-6)
for name in ("estimator", "noise", "method", "descriptor"):
    obj = diffgrn.from_config(saved.config[name])
    assert obj.config() == saved.config[name], name
print("loaded back in a fresh process:", type(reg).__name__,
      *(type(diffgrn.from_config(saved.config[n])).__name__
        for n in ("estimator", "noise", "method", "descriptor")))
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T=2, R=16, a few iterations")
    p.add_argument("--out", default="extending", help="folder for the saved pieces")
    args = p.parse_args(argv)
    q = args.quick
    objective = diffgrn.Objective(
        tissue=diffgrn.Chain(7, "open"),
        dynamics=diffgrn.Dynamics(t_final=2.0 if q else 20.0, dt=0.05 if q else 0.01),
        replicates=16 if q else 100,
    )
    antithetic = objective.replace(dynamics=objective.dynamics.replace(noise=AntitheticNoise()))
    regulator = SquareInhibition()
    iters = 3 if q else 60

    es = diffgrn.train(antithetic, regulator, OnePlusOne(), key=jr.key(0), iterations=iters)
    spsa = diffgrn.Gradient(estimator=SPSA())
    grad = diffgrn.train(objective, es.best_regulator, spsa, key=jr.key(1), iterations=iters)
    for name, res in (("(1+1)-ES, antithetic noise", es), ("Adam on SPSA", grad)):
        fresh = diffgrn.assess(objective, res.best_regulator, key=jr.key(99), refine=None)
        print(f"{name:28s} fresh U = {fresh['mean']:.3f} ± {fresh['std']:.3f}")
    library = diffgrn.explore(
        objective,
        regulator,
        diffgrn.IMGEP(),
        budget=32 if q else 400,
        key=jr.key(2),
        descriptors=(MeanLevel(), diffgrn.discovery.FateFraction()),
        batch=16 if q else 50,
        progress=False,
    )
    print(f"explore with MeanLevel: {library.filled()} bins filled")

    out = Path(args.out)
    config = dict(
        estimator=SPSA().config(),
        noise=AntitheticNoise().config(),
        method=OnePlusOne().config(),
        descriptor=MeanLevel().config(),
    )
    diffgrn.save(out, grad.best_regulator, config)
    s = jnp.linspace(0, 1, 5)[:, None]
    f = grad.best_regulator(s, s).ravel().tolist()
    (out / "expected.json").write_text(json.dumps(dict(f=f)))
    check_in_fresh_process(out.resolve())


if __name__ == "__main__":
    main()
