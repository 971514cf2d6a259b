"""Speed of one objective evaluation: Diffrax path vs a plain `lax.scan` baseline.

    python -m benchmarks.speed [--repeats 20] [--replicates 100]

Both paths simulate the same model from the same initial states and Brownian
increments (drawn by `Dynamics`, included in both timings), so the ratio is the cost
of going through Diffrax. Prints a table; nothing is asserted.
"""

import argparse
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import diffgrn
from diffgrn.methods import MuPlusLambdaES


def plain_scan_simulate(objective, regulator, key):
    """The same Euler–Maruyama as `Objective.simulate`, as a hand-written scan."""
    dyn, tissue = objective.dynamics, objective.tissue
    s0, path = objective.draw(key)
    inc = path.increments

    def body(s, dw):
        s = s + (regulator(s, tissue.neighbour_mean(s)) * dyn.dt + dyn.sigma * dw)
        return tissue.pin(jnp.clip(s, 0.0, 1.0)), None

    return jax.lax.scan(body, s0, inc)[0]


def soft_loss(simulate, objective):
    def loss(regulator, key):
        fates = objective.readout(simulate(regulator, key))
        return -diffgrn.soft_utility(fates, objective.bandwidth).value

    return loss


def timed(fn, *args, repeats):
    out = fn(*args)  # compile
    jax.block_until_ready(out)
    best = float("inf")
    total = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        dt = time.perf_counter() - t
        total += dt
        best = min(best, dt)
    return total / repeats * 1e3, best * 1e3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--replicates", type=int, default=100)
    args = p.parse_args(argv)

    obj = diffgrn.Objective(replicates=args.replicates)
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    key = jr.key(1)
    scan_sim = lambda r, k: plain_scan_simulate(obj, r, k)
    assert jnp.allclose(
        eqx.filter_jit(scan_sim)(reg, key), eqx.filter_jit(obj.simulate)(reg, key), atol=1e-5
    )

    rows = {}
    rows["scan forward"] = timed(eqx.filter_jit(scan_sim), reg, key, repeats=args.repeats)
    rows["diffrax forward"] = timed(eqx.filter_jit(obj.simulate), reg, key, repeats=args.repeats)
    rows["scan forward+backward"] = timed(
        eqx.filter_jit(eqx.filter_value_and_grad(soft_loss(scan_sim, obj))),
        reg,
        key,
        repeats=args.repeats,
    )
    rows["diffrax soft forward"] = timed(eqx.filter_jit(obj.loss), reg, key, repeats=args.repeats)
    rows["diffrax forward+backward"] = timed(
        eqx.filter_jit(eqx.filter_value_and_grad(obj.loss)), reg, key, repeats=args.repeats
    )
    for k in (500, 200):
        cut = obj.replace(dynamics=obj.dynamics.replace(backprop_steps=k))
        rows[f"diffrax forward+backward, last {k} steps"] = timed(
            eqx.filter_jit(eqx.filter_value_and_grad(cut.loss)), reg, key, repeats=args.repeats
        )
    tree = eqx.tree_at(lambda o: o.dynamics, obj, diffgrn.Dynamics(brownian="tree"))
    rows["diffrax forward, VirtualBrownianTree"] = timed(
        eqx.filter_jit(tree.simulate), reg, key, repeats=max(2, args.repeats // 10)
    )

    trainer = MuPlusLambdaES().build(obj, reg)
    state = trainer.init(key)
    es_step = jax.jit(trainer.step)
    rows["ES generation (20 × R)"] = timed(es_step, state, key, repeats=max(2, args.repeats // 4))

    print(
        f"machine: {platform.machine()}, {jax.devices()[0].device_kind}, "
        f"jax {jax.__version__}, diffrax {diffgrn.dynamics.diffrax.__version__}; "
        f"N = 7, R = {args.replicates}, {obj.dynamics.n_steps} steps"
    )
    print(f"{'':40s} {'mean ms':>9s} {'best ms':>9s}")
    for name, (mean, best) in rows.items():
        print(f"{name:40s} {mean:9.1f} {best:9.1f}")
    f = lambda a, b: rows[a][0] / rows[b][0]
    print(f"diffrax / scan, forward:                  {f('diffrax forward', 'scan forward'):.2f}")
    print(
        f"diffrax fwd+bwd / diffrax soft forward:   "
        f"{f('diffrax forward+backward', 'diffrax soft forward'):.2f}"
    )
    print(
        f"scan fwd+bwd / scan forward:              "
        f"{f('scan forward+backward', 'scan forward'):.2f}"
    )
    for k in (500, 200):
        print(
            f"fwd+bwd, last {k} steps / fwd+bwd:       "
            f"{f(f'diffrax forward+backward, last {k} steps', 'diffrax forward+backward'):.2f}"
        )
    print(
        f"VirtualBrownianTree / grid path, forward: "
        f"{f('diffrax forward, VirtualBrownianTree', 'diffrax forward'):.1f}"
    )


if __name__ == "__main__":
    main()
