"""Peak memory of a forward solve, default noise against the grid path (issue 19's
acceptance figures).

    python -m benchmarks.memory [--horizons 20,200,2000] [--cells 10000,100000,1000000]

Horizon: `Objective()` at its defaults (model.md's 7-cell open chain, R = 100,
dt = 0.01, the default MLP) at T = 20, 200 and 2 000, with `CounterNoise()` (the
default) and `GridNoise()` (diffgrn <= 0.4's default). Cells: `benchmarks.scale`'s
square periodic lattice (R = 8, 100 steps, the tanh regulator) at the sizes given,
with each noise. Every configuration runs in a fresh subprocess, so its peak
(`ru_maxrss` of that process, the JAX runtime included) is its own; "start" is the
process's peak before the solve is compiled (imports, runtime, the objects).
`--grid-max-cells` skips the grid path above a size (its increments alone are
steps × R × N floats) and says so. Prints tables; asserts nothing.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.random as jr

import diffgrn

from . import scale

NOISES = scale.NOISES


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def one(spec: dict) -> dict:
    """One forward solve at the defaults but T and the noise (run in a subprocess)."""
    dyn = diffgrn.Dynamics(t_final=spec["t_final"], noise=NOISES[spec["noise"]]())
    obj = diffgrn.Objective(dynamics=dyn)
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    start = peak_gib()
    t = time.perf_counter()
    jax.block_until_ready(eqx.filter_jit(obj.simulate)(reg, jr.key(1)))
    return dict(spec, start_gib=start, peak_gib=peak_gib(), seconds=time.perf_counter() - t)


def run(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--one", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return dict(spec, error=(proc.stderr.strip().splitlines() or ["killed"])[-1][:200])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--horizons", default="20,200,2000")
    p.add_argument("--cells", default="10000,100000,1000000")
    p.add_argument("--grid-max-cells", type=int, default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(json.loads(args.one))))
        return
    print(
        f"machine: {platform.machine()}, {jax.devices()[0].device_kind}, "
        f"jax {jax.__version__}; peak = ru_maxrss of a fresh process per row"
    )
    print("\nhorizon: Objective() defaults (chain N = 7, R = 100, dt = 0.01, MLP); GiB")
    print(f"{'noise':>8s} {'T':>6s} {'start':>7s} {'peak':>7s} {'/ T=first':>10s} {'s':>6s}")
    for noise in NOISES:
        first = None
        for t in (float(v) for v in args.horizons.split(",")):
            r = run(dict(noise=noise, t_final=t))
            if "error" in r:
                print(f"{noise:>8s} {t:6g}  error: {r['error']}")
                continue
            first = first or r["peak_gib"]
            print(
                f"{noise:>8s} {t:6g} {r['start_gib']:7.2f} {r['peak_gib']:7.2f} "
                f"{r['peak_gib'] / first:10.2f} {r['seconds']:6.1f}"
            )
    print("\ncells: square periodic lattice, R = 8, 100 steps, tanh regulator; GiB")
    print(f"{'noise':>8s} {'N':>8s} {'start':>7s} {'peak':>7s} {'fwd s':>7s}")
    for n in (int(v) for v in args.cells.split(",")):
        for noise in NOISES:
            if noise == "grid" and args.grid_max_cells and n > args.grid_max_cells:
                print(f"{noise:>8s} {n:8d}  skipped (--grid-max-cells {args.grid_max_cells})")
                continue
            spec = dict(kind="lattice", cells=n, steps=100, replicates=8, noise=noise, repeats=1)
            r = scale.run(spec)
            if "error" in r:
                print(f"{noise:>8s} {n:8d}  error: {r['error']}")
                continue
            print(
                f"{noise:>8s} {n:8d} {r['start_peak_gib']:7.2f} {r['forward_peak_gib']:7.2f} "
                f"{r['forward_s']:7.1f}"
            )


if __name__ == "__main__":
    main()
