# %% [markdown]
# # 8. Behaviour over time: which rhythms can a circuit make?
#
# The other notebooks score a tissue at the final time T. Here the objective is what
# happens *over* time: does gene 0 oscillate, at what amplitude and frequency, and
# can a circuit be tuned to a chosen rhythm? The model is the oscillator experiment
# of AutoDiscJax's tutorial: one cell, three genes, no noise,
# dy/dt = sigmoid(W y + b) − y (a `TranscriptionalRegulator` with k = 1 and no
# coupling), with W ∈ [−30, 30]³ˣ³, b ∈ [−10, 10]³ and the initial state y0 ∈ [0, 1]³
# searched. We map its behaviours with curiosity-driven search (IMGEP) against
# uniform random search, then fit a target oscillation by backpropagation.

# %%
import os

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import diffgrn
from diffgrn.behaviour import GoalIMGEP, UniformSearch, discover, fit, loss_of, replay
from diffgrn.observe import Oscillation, Spectrum, TargetTrajectory, Trajectory
from diffgrn.space import Box, SearchSpace

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
T, BUDGET = (50.0, 1000) if QUICK else (100.0, 3000)

objective = diffgrn.Objective(
    tissue=diffgrn.Cell(),  # one cell: no neighbours
    dynamics=diffgrn.Dynamics(t_final=T, dt=0.01, sigma=0.0, constraint=diffgrn.Unconstrained()),
    genes=3,
    replicates=1,  # deterministic: one replicate says everything
    utility=diffgrn.NoUtility(),  # nothing is scored at T
)
regulator = diffgrn.TranscriptionalRegulator(3, key=jr.key(0))
regulator = eqx.tree_at(lambda r: r.V, regulator, jnp.zeros((3, 3)))  # no coupling
space = SearchSpace({"W": Box(-30, 30), "b": Box(-10, 10)}, frozen=("V", "log_k"), init=Box(0, 1))
bound = space.bind(regulator)
print(f"searched: {bound.size} coordinates (W, b and y0); frozen: V, log k")

# %% [markdown]
# ## Trajectories
#
# An observable says what a simulation records: `Trajectory(start=0.5, genes=(0,))`
# keeps gene 0 over the second half of the run (the transient dropped). Four random
# points of the box: most circuits settle to a fixed point.


# %%
def record(reg, observe):
    """What `observe` records of one simulation, with its times (a `Recording`)."""
    states = objective.simulate(reg, jr.key(0), observe=observe)
    return observe.recording(states, objective.dynamics.n_steps, objective.dynamics.dt)


window = Trajectory(start=0.5, genes=(0,))
theta = bound.uniform(jr.key(1), 4)
fig, axes = plt.subplots(1, 4, figsize=(13, 2.4), sharey=True)
for ax, th in zip(axes, theta):
    reg = bound.regulator(th)  # a `Started`: the regulator with its initial state
    rec = record(reg, Trajectory(genes=(0,)))
    ax.plot(rec.times, rec.states[0, :, 0, 0])
    ax.set_xlabel("t")
axes[0].set_ylabel("gene 0")
plt.tight_layout()

# %% [markdown]
# ## IMGEP against random search
#
# `discover` simulates the circuits in batches. Random search (`UniformSearch`) draws
# every point from the box. IMGEP (`GoalIMGEP`) draws a first round the same way, then
# repeatedly samples a goal in the goal space (here the modulus of gene 0's spectrum,
# `Spectrum()`), mutates the stored point whose spectrum is nearest it, and stores what
# the mutant does. The descriptor `Oscillation` says whether gene 0 oscillates
# (AutoDiscJax's periodicity test, its threshold scaled to the number of samples) and
# at what offset, amplitude and frequency.

# %%
samples = window.samples(objective.dynamics.n_steps)
detector = Oscillation(threshold=40.0 * samples / 5000)  # 40 for the tutorial's 5 000
libraries = {
    name: discover(objective, regulator, space, strategy, observe=window, goal=Spectrum(),
                   descriptors=[detector], budget=BUDGET, key=jr.key(0), progress=False)
    for name, strategy in (("random", UniformSearch()), ("imgep", GoalIMGEP()))
}  # fmt: skip
found = {n: np.any(lib.descriptors != 0, axis=1) for n, lib in libraries.items()}
for name, f in found.items():
    print(f"{name}: {f.sum()} oscillators in {BUDGET} simulations")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for name, colour, size in (("imgep", "tab:blue", 6), ("random", "tab:red", 18)):
    d = libraries[name].descriptors[found[name]]
    axes[0].scatter(d[:, 2], d[:, 1], s=size, alpha=0.7, color=colour, label=name)
    axes[1].scatter(d[:, 0], d[:, 1], s=size, alpha=0.7, color=colour, label=name)
axes[0].set(xlabel="frequency (cycles per time unit)", ylabel="amplitude")
axes[1].set(xlabel="offset (mean of gene 0)", ylabel="amplitude")
axes[0].legend()
plt.tight_layout()

# %% [markdown]
# Random search finds a few oscillators; IMGEP, steered toward spectra it has not yet
# produced, finds many more and spreads them over amplitudes and frequencies
# (`python -m studies oscillators` measures this at the tutorial's full size, 5 000
# simulations and 3 seeds: docs/discovery.md). Every library row can be re-simulated
# exactly from what it stores (`replay`):

# %%
lib = libraries["imgep"]
rows = np.flatnonzero(found["imgep"])
picked = rows[np.argsort(lib.descriptors[rows, 1])[-4:]] if len(rows) else rows  # largest
traces = replay(lib, picked, objective, space, window) if len(picked) else []
fig, axes = plt.subplots(1, max(len(picked), 1), figsize=(13, 2.4), sharey=True, squeeze=False)
dyn = objective.dynamics
for ax, row, trace in zip(axes[0], picked, traces):
    off, amp, freq = lib.descriptors[row]
    ax.plot(window.recording(trace, dyn.n_steps, dyn.dt).times, np.asarray(trace[0, :, 0, 0]))
    ax.set_xlabel("t")
    ax.set_title(f"A = {amp:.2f}, w = {freq:.2f}", fontsize=9)
plt.tight_layout()

# %% [markdown]
# ## A target rhythm, by backpropagation
#
# `TargetTrajectory(amplitude, frequency, offset)` is a loss over the recorded times:
# L = √Σₜ (y(t) − (A cos 2πwt + b))². `fit` is `train` with that loss as the
# objective (lower is better) and Adam on the pathwise gradient through the solve,
# inside the search box. From a random circuit, gradient descent is trapped at a fixed
# point (a flat trajectory's loss has no gradient toward an oscillation), so the start
# is a discovery: of the 50 whose (offset, amplitude, frequency) are nearest the
# target's, the one with the lowest loss. Exploration supplies the rhythm; the
# gradient then aligns its phase and shape.

# %%
target = TargetTrajectory(amplitude=0.3, frequency=0.2, offset=0.5)
whole = Trajectory(genes=(0,))
if len(rows):
    d = lib.descriptors[rows]
    near = rows[
        np.argsort(abs(d[:, 0] - 0.5) / 0.5 + abs(d[:, 1] - 0.6) / 0.6 + abs(d[:, 2] - 0.2) / 0.2)[
            :50
        ]
    ]
    losses = np.asarray(
        loss_of(objective, bound, target, whole, jr.key(0))(jnp.asarray(lib.points[near]))
    )
    begin = bound.regulator(jnp.asarray(lib.points[near[int(np.nanargmin(losses))]]))
    adam = diffgrn.ClippedAdam(1e-2, clip=None, b1=0.02, b2=0.001)
    result = fit(objective, space, begin, target, whole, steps=30 if QUICK else 100,
                 optimiser=adam, key=jr.key(0))  # fmt: skip
    print(f"L: {np.nanmin(losses):.2f} at the discovery -> {result.best_utility:.2f} after Adam")
    fig, ax = plt.subplots(figsize=(9, 3))
    for reg, label in ((begin, "the discovery"), (result.best_regulator, "after Adam")):
        rec = record(reg, whole)
        ax.plot(rec.times, rec.states[0, :, 0, 0], label=label)
    ax.plot(rec.times, target.target(rec.times), "k--", lw=1, label="target")
    ax.set(xlabel="t", ylabel="gene 0", xlim=(0, min(T, 40)))
    ax.legend(fontsize=8)
    plt.tight_layout()

# %% [markdown]
# ## Further
#
# - Several cells: the same circuit in every cell of a ring or sheet, coupled through
#   the neighbour mean (`TranscriptionalRegulator`'s V), synchronises, locks in
#   anti-phase or carries travelling waves; `diffgrn.waves` reads phases and lags
#   (`python -m studies coupled`, docs/discovery.md "Beyond one cell").
# - A gradient inside the search (`diffgrn.goal_gradient.GoalGradient`) and fine-tuning
#   with CMA-ES instead of Adam: `python -m studies goal_gradient`,
#   `python -m studies oscillators`.
#
# That is the series. The README and docs/ hold the command line, the measured
# comparisons and the studies.
