"""Oscillators: which rhythms can a 3-gene transcriptional circuit make?

Curiosity-driven exploration (IMGEP) in the spectrum of gene 0 against uniform random
search in the box W ∈ [−30, 30]³ˣ³, b ∈ [−10, 10]³, y0 ∈ [0, 1]³ (AutoDiscJax's
oscillator tutorial), then Adam toward a target oscillation from the best discovery.

    python examples/oscillators.py            # T = 100, 5000 rollouts each (about a minute)
    python examples/oscillators.py --quick    # T = 20, 300 rollouts each
"""

import argparse

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import diffgrn
from diffgrn.behaviour import GoalIMGEP, UniformSearch, discover, fit, loss_of
from diffgrn.observe import Oscillation, Spectrum, TargetTrajectory, Trajectory
from diffgrn.space import Box, SearchSpace


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T = 20, 300 rollouts each")
    args = p.parse_args(argv)
    t_final, budget = (20.0, 300) if args.quick else (100.0, 5000)

    # One cell, no noise, one replicate: a deterministic circuit.
    objective = diffgrn.Objective(
        tissue=diffgrn.Cell(),
        dynamics=diffgrn.Dynamics(
            t_final=t_final, dt=0.01, sigma=0.0, constraint=diffgrn.Unconstrained()
        ),
        genes=3,
        replicates=1,
        utility=diffgrn.NoUtility(),
    )
    regulator = diffgrn.TranscriptionalRegulator(3, key=jr.key(0))
    regulator = eqx.tree_at(lambda r: r.V, regulator, jnp.zeros((3, 3)))  # no coupling
    space = SearchSpace(
        {"W": Box(-30, 30), "b": Box(-10, 10)}, frozen=("V", "log_k"), init=Box(0, 1)
    )
    window = Trajectory(start=0.5, genes=(0,))  # gene 0 over the last half only
    samples = window.samples(objective.dynamics.n_steps)
    detector = Oscillation(threshold=40.0 * samples / 5000)  # 40 for 5000 samples

    libraries = {}
    for name, strategy in (("random", UniformSearch()), ("imgep", GoalIMGEP())):
        libraries[name] = discover(
            objective, regulator, space, strategy, observe=window, goal=Spectrum(),
            descriptors=[detector], budget=budget, key=jr.key(0), progress=False,
        )  # fmt: skip
        found = np.any(libraries[name].descriptors != 0, axis=1)
        print(f"{name}: {found.sum()} oscillators of {budget} rollouts")

    # Adam toward A cos 2πwt + b from IMGEP's oscillator nearest the target.
    target = TargetTrajectory(amplitude=0.3, frequency=0.2, offset=0.5)
    whole = Trajectory(genes=(0,))
    bound = space.bind(regulator)
    lib = libraries["imgep"]
    rows = np.flatnonzero(np.any(lib.descriptors != 0, axis=1))
    if len(rows):
        losses = loss_of(objective, bound, target, whole, jr.key(0))(jnp.asarray(lib.points[rows]))
        start = rows[int(np.nanargmin(np.asarray(losses)))]
        begin = bound.regulator(jnp.asarray(lib.points[start]))  # a Started (y0 searched)
        res = fit(objective, space, begin, target, whole,
                  steps=10 if args.quick else 100, key=jr.key(0))  # fmt: skip
        before = float(np.nanmin(np.asarray(losses)))
        print(f"fine-tuning discovery #{start}: L {before:.2f} -> {res.best_utility:.2f}")


if __name__ == "__main__":
    main()
