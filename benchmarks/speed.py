"""Speed of one objective evaluation: the default noise against the grid path, and
Diffrax against a plain `lax.scan` baseline.

    python -m benchmarks.speed [--repeats 20] [--replicates 100]

The default noise (`CounterNoise()`: increments drawn inside each step) and
`GridNoise()` (stored on the grid; diffgrn <= 0.4's default) are timed in the same
process, their calls interleaved, so that a shared machine slows both alike. The
scan simulates the grid path's model from the same initial states and Brownian
increments (drawn by `Dynamics`, included in both timings), so that ratio is the
cost of going through Diffrax. Prints a table; nothing is asserted.
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
    """(mean ms, best ms) of `repeats` calls after one compiling call."""
    return interleaved({"": fn}, *args, repeats=repeats)[""]


def interleaved(fns: dict, *args, repeats):
    """`timed` for several functions whose calls alternate: {name: (mean ms, best ms)}."""
    for fn in fns.values():
        jax.block_until_ready(fn(*args))  # compile
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t)
    return {n: (sum(v) / len(v) * 1e3, min(v) * 1e3) for n, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--replicates", type=int, default=100)
    args = p.parse_args(argv)

    obj = diffgrn.Objective(replicates=args.replicates)  # the default: CounterNoise()
    grid = obj.replace(dynamics=obj.dynamics.replace(noise=diffgrn.GridNoise()))
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    key = jr.key(1)
    scan_sim = lambda r, k: plain_scan_simulate(grid, r, k)
    assert jnp.allclose(
        eqx.filter_jit(scan_sim)(reg, key), eqx.filter_jit(grid.simulate)(reg, key), atol=1e-5
    )
    grad = lambda o, **kw: eqx.filter_jit(
        eqx.filter_value_and_grad(lambda r, k: -o.soft(r, k, **kw).value)
    )

    rows = interleaved(
        {
            "diffrax forward, counter (default)": eqx.filter_jit(obj.simulate),
            "diffrax forward, grid": eqx.filter_jit(grid.simulate),
            "scan forward (grid increments)": eqx.filter_jit(scan_sim),
        },
        reg,
        key,
        repeats=args.repeats,
    )
    rows |= interleaved(
        {
            "diffrax fwd+bwd, counter (default)": grad(obj),
            "diffrax fwd+bwd, grid": grad(grid),
            "scan fwd+bwd (grid increments)": eqx.filter_jit(
                eqx.filter_value_and_grad(soft_loss(scan_sim, grid))
            ),
            "diffrax soft forward, counter": eqx.filter_jit(obj.loss),
        },
        reg,
        key,
        repeats=args.repeats,
    )
    for k in (500, 200):
        rows[f"counter fwd+bwd, last {k} steps"] = timed(
            grad(obj, backprop_steps=k), reg, key, repeats=args.repeats
        )
    tree = obj.replace(dynamics=obj.dynamics.replace(noise=diffgrn.VirtualTreeNoise()))
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
    ratios = {
        "counter / grid, forward": ("diffrax forward, counter (default)", "diffrax forward, grid"),
        "counter / grid, fwd+bwd": ("diffrax fwd+bwd, counter (default)", "diffrax fwd+bwd, grid"),
        "diffrax / scan, forward (grid)": (
            "diffrax forward, grid",
            "scan forward (grid increments)",
        ),
        "fwd+bwd / soft forward (counter)": (
            "diffrax fwd+bwd, counter (default)",
            "diffrax soft forward, counter",
        ),
        "scan fwd+bwd / scan forward": (
            "scan fwd+bwd (grid increments)",
            "scan forward (grid increments)",
        ),
        **{
            f"fwd+bwd, last {k} steps / fwd+bwd": (
                f"counter fwd+bwd, last {k} steps",
                "diffrax fwd+bwd, counter (default)",
            )
            for k in (500, 200)
        },
        "VirtualBrownianTree / counter, forward": (
            "diffrax forward, VirtualBrownianTree",
            "diffrax forward, counter (default)",
        ),
    }
    for name, (a, b) in ratios.items():
        print(f"{name + ':':40s} {f(a, b):9.2f}")


if __name__ == "__main__":
    main()
