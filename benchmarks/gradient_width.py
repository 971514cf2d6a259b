"""Does Adam keep working as the MLP regulator widens? (issue 22, item 1)

On the open 7-cell chain (T = 2, dt = 0.02, R = 32: the studies' quick objective),
Adam on the pathwise gradient at widths (8, 8), (64, 64), (256, 256), 3 seeds each,
under a few settings that scale with the width: learning rate 3e-2 unscaled (the
default before 0.5); 3e-2 · 8 / width (`ClippedAdam`'s default `reference_fan_in=8`);
3e-2 · sqrt(97 / d); unscaled with the output layer started at 1e-3 instead of 1e-2;
unscaled with gradients clipped at 0.1 instead of 1. Prints the final fresh-noise U
(mean of 5 draws) per setting and width. Timing is not asserted (the machine may be shared).

    python -m benchmarks.gradient_width [--iterations 40] [--seeds 3]
"""

import argparse
import math
import statistics
import time

import jax.random as jr

import diffgrn


def objective() -> diffgrn.Objective:
    return diffgrn.Objective(
        tissue=diffgrn.Chain(7, "open"),
        dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.02),
        replicates=32,
    )


SETTINGS = {
    "lr 3e-2, unscaled": lambda w, d: (
        diffgrn.Gradient(diffgrn.ClippedAdam(3e-2, reference_fan_in=None)),
        0.01,
    ),
    "lr 3e-2·8/width (default)": lambda w, d: (diffgrn.Gradient(), 0.01),
    "lr 3e-2·sqrt(97/d)": lambda w, d: (
        diffgrn.Gradient(diffgrn.ClippedAdam(3e-2 * math.sqrt(97 / d), reference_fan_in=None)),
        0.01,
    ),
    "output init 1e-3": lambda w, d: (
        diffgrn.Gradient(diffgrn.ClippedAdam(reference_fan_in=None)),
        0.001,
    ),
    "clip 0.1": lambda w, d: (
        diffgrn.Gradient(diffgrn.ClippedAdam(3e-2, clip=0.1, reference_fan_in=None)),
        0.01,
    ),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--widths", default="8,64,256")
    p.add_argument("--settings", default=None, help="comma-separated indices into SETTINGS")
    args = p.parse_args(argv)
    obj = objective()
    names = list(SETTINGS)
    if args.settings:
        names = [names[int(i)] for i in args.settings.split(",")]
    for w in (int(x) for x in args.widths.split(",")):
        for name in names:
            finals, starts, t0 = [], [], time.perf_counter()
            for seed in range(args.seeds):
                k_init, k_train, k_assess = jr.split(jr.key(seed), 3)
                d = diffgrn.count_parameters(diffgrn.MLPRegulator((w, w), key=k_init))
                method, scale = SETTINGS[name](w, d)
                reg = diffgrn.MLPRegulator((w, w), key=k_init, output_scale=scale)
                res = diffgrn.train(
                    obj,
                    reg,
                    method,
                    key=k_train,
                    iterations=args.iterations,
                    progress=False,
                    select_top=1,
                )
                f = diffgrn.assess(obj, res.final_regulator, key=k_assess, repeats=5, refine=None)
                finals.append(f["mean"])
                starts.append(res.history.hard_utility[0])
            print(
                f"width {w:4d} d={d:6d} {name:22s} final fresh U "
                + " ".join(f"{u:.3f}" for u in finals)
                + f"  median {statistics.median(finals):.3f}"
                + f"  (first-step U {' '.join(f'{u:.2f}' for u in starts)})"
                + f"  {time.perf_counter() - t0:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
