"""Cost per cell-step and peak memory as the tissue grows, against a hand-written stencil.

    python -m benchmarks.scale [--sizes 100,10000,1000000] [--steps 100] [--replicates 8]

Square periodic lattices of N cells (R replicates, `--steps` Euler–Maruyama steps,
the 3-parameter tanh regulator so that the drift is cheap and the neighbour mean,
the solver and the noise dominate), and the chain. The baseline, in the same
process, is a plain `lax.scan` of the same model whose neighbour mean is four
`jnp.roll`s and whose noise is drawn inside each step (`--grid-max-cells` skips the
grid path above a size: its increments alone are steps × R × N floats). Then the
horizon (issue 19's memory figures): peak memory of a forward solve at `Objective()`'s
defaults but T (the 7-cell chain, R = 100, dt = 0.01, the MLP) and of a checkpointed
gradient (`Dynamics(checkpoints=20)`) at T = 20, 200, 2 000, with `GridNoise()` and
`CounterNoise()` (the default); "start" is the process's peak before compiling.

    python -m benchmarks.scale --sizes 10000,100000,1000000 --grid-max-cells 100000

Every configuration runs in its own subprocess, so its peak memory (`ru_maxrss`,
the whole process, JAX runtime included) is its own. Prints tables; asserts nothing.
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
import jax.numpy as jnp
import jax.random as jr

import diffgrn

NOISES = {"counter": diffgrn.CounterNoise, "grid": diffgrn.GridNoise}


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn, *args, repeats: int) -> float:
    """Best wall time (s) of `repeats` calls after one compiling call."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def stencil_simulate(reg, rows, cols, replicates, steps, dt, sigma, key):
    """The square periodic lattice by hand: four rolls, noise drawn in each step."""
    k0, kw = jr.split(key)
    s0 = jr.uniform(k0, (replicates, rows, cols, 1), minval=0.4, maxval=0.6)

    def body(s, k):
        sbar = sum(jnp.roll(s, sh, ax) for sh in (1, -1) for ax in (1, 2)) / 4
        dw = jr.normal(jr.fold_in(kw, k), s.shape) * jnp.sqrt(dt)
        return jnp.clip(s + reg(s, sbar) * dt + sigma * dw, 0.0, 1.0), None

    return jax.lax.scan(body, s0, jnp.arange(steps))[0]


def one(spec: dict) -> dict:
    """Measure one configuration (run in a subprocess)."""
    kind, out = spec["kind"], dict(spec)
    if kind == "defaults":  # Objective() at its defaults but T and the noise
        dyn = diffgrn.Dynamics(t_final=spec["t_final"], noise=NOISES[spec["noise"]]())
        obj, reg = diffgrn.Objective(dynamics=dyn), diffgrn.MLPRegulator(key=jr.key(0))
        out["start_peak_gib"] = peak_gib()
        jax.block_until_ready(eqx.filter_jit(obj.simulate)(reg, jr.key(1)))
        return dict(out, forward_peak_gib=peak_gib())
    reg = diffgrn.TanhRegulator(1.0, 6.0, 0.4)
    key, steps, r = jr.key(0), spec["steps"], spec["replicates"]
    dt = spec.get("dt", 0.01)
    if kind == "stencil":
        side = int(round(spec["cells"] ** 0.5))
        sim = lambda rg, k: stencil_simulate(rg, side, side, r, steps, dt, 0.1, k)
    else:
        tissue = (
            diffgrn.Chain(spec["cells"], "periodic")
            if kind == "chain"
            else diffgrn.Lattice(
                int(round(spec["cells"] ** 0.5)),
                int(round(spec["cells"] ** 0.5)),
                "square",
                "periodic",
            )
        )
        dyn = diffgrn.Dynamics(
            t_final=steps * dt,
            dt=dt,
            noise=NOISES[spec["noise"]](),
            checkpoints=spec.get("checkpoints"),
        )
        obj = diffgrn.Objective(tissue=tissue, dynamics=dyn, replicates=r)
        sim = obj.simulate

    def loss(rg, k):
        s = sim(rg, k)
        return jnp.mean(s * jnp.cos(jnp.arange(s.size).reshape(s.shape)))

    repeats = spec.get("repeats", 3)
    if spec.get("forward", True):
        out["start_peak_gib"] = peak_gib()
        out["forward_s"] = timed(eqx.filter_jit(sim), reg, key, repeats=repeats)
        out["forward_peak_gib"] = peak_gib()
    if spec.get("backward", False):
        out["gradient_s"] = timed(eqx.filter_jit(eqx.filter_grad(loss)), reg, key, repeats=repeats)
        out["gradient_peak_gib"] = peak_gib()
    cell_steps = spec["cells"] * r * steps
    for name in ("forward", "gradient"):
        if f"{name}_s" in out:
            out[f"{name}_ns_per_cell_step"] = out[f"{name}_s"] / cell_steps * 1e9
    return out


def run(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--one", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return dict(spec, error=proc.stderr.strip().splitlines()[-1][:200])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="100,10000,1000000")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--replicates", type=int, default=8)
    p.add_argument("--horizons", default="20,200,2000")
    p.add_argument("--grid-max-cells", type=int, default=None, help="skip the grid path above")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(json.loads(args.one))))
        return
    print(
        f"machine: {platform.machine()}, {jax.devices()[0].device_kind}, "
        f"jax {jax.__version__}; R = {args.replicates}, {args.steps} steps, "
        "tanh regulator; best of 3 after compiling; peak = whole-process ru_maxrss"
    )
    base = dict(steps=args.steps, replicates=args.replicates)
    head = (
        f"{'tissue':>22s} {'N':>8s} {'noise':>8s} {'fwd ns':>8s} {'fwd GiB':>8s} "
        f"{'grad ns':>8s} {'grad GiB':>8s} {'fwd / stencil':>13s}"
    )
    print("\nns per cell-step (R × N × steps), peak memory of the process")
    print(head)
    for n in (int(v) for v in args.sizes.split(",")):
        rows = [("stencil (4 rolls)", run(dict(base, kind="stencil", cells=n, backward=True)))]
        for noise in ("grid", "counter"):
            skip = noise == "grid" and args.grid_max_cells and n > args.grid_max_cells
            spec = dict(base, kind="lattice", cells=n, noise=noise, backward=True)
            r = dict(spec, skipped="(--grid-max-cells)") if skip else run(spec)
            rows.append(("diffgrn square lattice", r))
        rows.append(("diffgrn chain", run(dict(base, kind="chain", cells=n, noise="counter"))))
        ref = rows[0][1].get("forward_s")
        for name, r in rows:
            if "skipped" in r:
                print(f"{name:>22s} {n:8d} {r['noise']:>8s}  skipped {r['skipped']}")
                continue
            if "error" in r:
                print(f"{name:>22s} {n:8d} {r.get('noise', '-'):>8s}  error: {r['error']}")
                continue
            ratio = r["forward_s"] / ref if ref else float("nan")
            print(
                f"{name:>22s} {n:8d} {r.get('noise', '-'):>8s} "
                f"{r['forward_ns_per_cell_step']:8.2f} {r['forward_peak_gib']:8.2f} "
                f"{r.get('gradient_ns_per_cell_step', float('nan')):8.2f} "
                f"{r.get('gradient_peak_gib', float('nan')):8.2f} {ratio:13.2f}"
            )
    print("\nhorizon: chain N = 7, R = 100, dt = 0.01; forward at Objective()'s defaults (MLP),")
    print("gradient with checkpoints = 20 (tanh); peak GiB of a fresh process per cell")
    print(f"{'noise':>8s} {'T':>6s} {'start':>6s} {'forward':>8s} {'/ first':>8s} {'gradient':>9s}")
    for path in ("grid", "counter"):
        first = None
        for t in (float(v) for v in args.horizons.split(",")):
            f = run(dict(kind="defaults", noise=path, t_final=t))
            spec = dict(kind="chain", cells=7, replicates=100, steps=int(round(t / 0.01)))
            g = run(dict(spec, noise=path, checkpoints=20, repeats=1, forward=False, backward=True))
            if "error" in f or "error" in g:
                print(f"{path:>8s} {t:6g}  error: {f.get('error') or g.get('error')}")
                continue
            first = first or f["forward_peak_gib"]
            print(
                f"{path:>8s} {t:6g} {f['start_peak_gib']:6.2f} {f['forward_peak_gib']:8.2f} "
                f"{f['forward_peak_gib'] / first:8.2f} {g['gradient_peak_gib']:9.2f}"
            )


if __name__ == "__main__":
    main()
