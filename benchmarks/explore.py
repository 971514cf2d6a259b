"""Speed of behaviour discovery on the oscillator circuit (studies/oscillators.py):
random search's and IMGEP's 5 000 rollouts against a hand-written vmapped `lax.scan`
rollout of the same circuit, in the same process.

    python -m benchmarks.explore [--budget 5000] [--batch 100]

Each `discover` call is timed after a first (compiling) call with the same shapes,
so compilation is excluded; the second call must not recompile. The baseline runs
`budget / batch` calls of a jitted vmap over `batch` circuits of the scan (Euler,
dt = 0.01, T = 100, gene 0 of the last half kept), and diffgrn's own simulation alone
(the vmapped `Objective.simulate` with the same observable) is timed beside it.
Prints a table; nothing is asserted. Timings on a shared machine are noisy: read the
ratios (all measured in this one process).
"""

import argparse
import platform
import time

import jax
import jax.random as jr
import numpy as np

from diffgrn.behaviour import GoalIMGEP, UniformSearch, _round, discover
from diffgrn.observe import Oscillation, Spectrum, Trajectory
from studies.oscillators import circuit


def scan_baseline(batch: int, steps: int, dt: float):
    @jax.jit
    def run(theta):
        def one(th):
            W, b, y0 = th[:9].reshape(3, 3), th[9:12], th[12:]

            def f(y, _):
                y = y + dt * (jax.nn.sigmoid(W @ y + b) - y)
                return y, y[0]

            return jax.lax.scan(f, y0, None, length=steps)[1][steps // 2 :]

        return jax.vmap(one)(theta)

    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=int, default=5000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    objective, regulator, space = circuit()
    bound = space.bind(regulator)
    window = Trajectory(start=0.5, genes=(0,))
    dyn = objective.dynamics
    calls = -(-args.budget // args.batch)
    thetas = bound.uniform(jr.key(0), args.batch)
    keys = jr.split(jr.key(1), args.batch)
    base = scan_baseline(args.batch, dyn.n_steps, dyn.dt)

    @jax.jit
    def ours(theta, keys):
        def one(th, k):
            reg, init = bound.build(th)
            return objective.simulate(reg, k, init=init, observe=window)

        return jax.vmap(one)(theta, keys)

    kw = dict(observe=window, goal=Spectrum(), descriptors=[Oscillation()], budget=args.budget)
    kw.update(batch=args.batch, key=jr.key(0), progress=False)
    fns = {
        "scan baseline (simulate only)": lambda: [base(thetas) for _ in range(calls)],
        "diffgrn simulate (vmapped, same observable)": lambda: [
            ours(thetas, keys) for _ in range(calls)
        ],
        "discover: random search": lambda: (
            discover(objective, regulator, space, UniformSearch(), **kw).descriptors
        ),
        "discover: IMGEP": lambda: discover(objective, regulator, space, GoalIMGEP(), **kw).goals,
    }
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile
    compiled = _round._cached._cache_size()
    times = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t)
    base_s = min(times["scan baseline (simulate only)"])
    print(
        f"{args.budget} rollouts, batch {args.batch}, {dyn.n_steps} Euler steps; "
        f"{platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}; "
        f"best of {args.repeats} (shared machine: read the ratios)"
    )
    print(f"{'':46s} {'best s':>8s} {'median s':>9s} {'÷ scan':>7s}")
    for k, v in times.items():
        print(f"{k:46s} {min(v):8.2f} {np.median(v):9.2f} {min(v) / base_s:7.2f}")
    again = _round._cached._cache_size() == compiled
    print(f"recompiled between calls: {'no' if again else 'YES'}")


if __name__ == "__main__":
    main()
