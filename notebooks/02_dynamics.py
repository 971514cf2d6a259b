# %% [markdown]
# # 2. The dynamics: simulate, kymographs, boundaries, noise
#
# Each cell's state s follows the stochastic differential equation
#
# ds = f(s, s̄) dt + σ dW, clipped to [0, 1] after every step,
#
# where s̄ is the mean of the cell's neighbours and f the *regulator*. Diffrax solves
# it by Euler–Maruyama (dt = 0.01 up to T = 20 by default); at T the state is
# thresholded at ½ into a fate. An `Objective` binds the tissue, the dynamics
# (`Dynamics`), the readout and the utility; every method, study and figure
# simulates through it. This notebook uses a fixed regulator, lateral inhibition
# f(s̄) = a·tanh(−b(s̄ − ½)): a cell whose neighbours are high is pushed low.

# %%
import os

import equinox as eqx
import jax.random as jr
import matplotlib.pyplot as plt

import diffgrn
from diffgrn import plotting

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
R = 32 if QUICK else 100

inhibition = diffgrn.TanhRegulator(a=1.0, b=10.0, c=0.5)
objective = diffgrn.Objective(tissue=diffgrn.Chain(7, boundary="open"), replicates=R)
print(objective.dynamics)

# %% [markdown]
# ## Simulate
#
# `simulate(regulator, key)` returns the final states `(replicates, cells, genes)`;
# `hard` scores the thresholded fates. The same key gives the same noise everywhere
# (common random numbers), and `eqx.filter_jit` compiles the whole solve once.

# %%
simulate = eqx.filter_jit(objective.simulate)
states = simulate(inhibition, jr.key(0))
print("final states:", states.shape)
print("hard utility on this draw:", diffgrn.hard_utility(states[..., 0]))
fig, ax = plt.subplots(figsize=(4, 4))
plotting.plot_patterns(states[..., 0], ax)
ax.set_title("fates of every replicate (sorted)", fontsize=10)
plt.show()

# %% [markdown]
# ## Kymographs: one replicate over time
#
# `save_every=k` keeps every k-th state: `(replicates, times, cells, genes)`. The cells
# start undecided in [0.4, 0.6]; neighbours push each other apart until every cell
# sits at a wall of the clip.

# %%
every = 10
traj = eqx.filter_jit(lambda r, k: objective.simulate(r, k, replicates=3, save_every=every))(
    inhibition, jr.key(1)
)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for i, ax in enumerate(axes):
    plotting.plot_kymograph(traj[i], objective.dynamics.dt * every, ax)
    ax.set_title(f"replicate {i}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Boundaries
#
# The chain's ends are a choice of the tissue: `open` (end cells average the one
# neighbour they have), `pinned` (both ends held at 0: the first model's second
# setting) or `periodic` (a ring). Pinned ends make the pattern start from a known
# state, which changes which patterns lateral inhibition can reach.

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for ax, boundary in zip(axes, ("open", "pinned", "periodic")):
    obj = objective.replace(tissue=diffgrn.Chain(7, boundary=boundary))
    s = eqx.filter_jit(obj.simulate)(inhibition, jr.key(2))
    u = diffgrn.hard_utility(s[..., 0])
    plotting.plot_patterns(s[..., 0], ax)
    ax.set_title(f"{boundary}: U = {u.value:.3f}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Noise
#
# The noise is an object too: `Dynamics(noise=CounterNoise())` (the default) draws
# each step's increments inside the step from a counter-based key, so nothing grows
# with the horizon; `GridNoise()` stores the increments on the grid (diffgrn ≤ 0.4's
# numbers, faster at small sizes); `NoNoise()` or σ = 0 solves the ODE from random
# initial states. First the two noise models at the default σ = 0.1, then how the
# utility of this regulator depends on σ.

# %%
for noise in (diffgrn.CounterNoise(), diffgrn.GridNoise()):
    obj = objective.replace(dynamics=diffgrn.Dynamics(noise=noise))
    print(
        f"{type(noise).__name__:12s}",
        diffgrn.assess(obj, inhibition, key=jr.key(3), repeats=3, refine=None),
    )

sigmas = [0.0, 0.1, 0.2, 0.4] if not QUICK else [0.0, 0.4]
curve = []
for sigma in sigmas:
    obj = objective.replace(dynamics=diffgrn.Dynamics(sigma=sigma))
    a = diffgrn.assess(obj, inhibition, key=jr.key(3), repeats=3, refine=None)
    curve.append((sigma, a.mean, a.sem))
    print(f"σ = {sigma:<4} {a}")
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.errorbar(*zip(*[(s, u) for s, u, _ in curve]), yerr=[e for *_, e in curve], fmt="o-")
ax.set(xlabel="noise σ", ylabel="hard U on fresh noise (bits per cell)")
plt.show()

# %% [markdown]
# The two noise models draw different (equally distributed) random numbers, so their
# utilities agree within the noise of the estimate, not to the digit. How U moves with
# σ depends on the regulator (read it off the curve above rather than assume it):
# train at the σ you mean to study (notebook 4).
#
# ## Time step: is the utility the SDE's, or Euler's?
#
# A stiff regulator (large dt·max|f′|) can make a pattern that only exists at this
# dt. `assess` re-solves at dt / 5 on the same Brownian paths and flags the
# difference (`resolution`); `Objective(max_stiffness=1)` keeps training away from
# such regulators.

# %%
for b in (10.0, 300.0):
    a = diffgrn.assess(objective, diffgrn.TanhRegulator(a=20.0, b=b), key=jr.key(4), repeats=4)
    res = a["resolution"]
    print(f"b = {b:5g}: dt·max|f'| = {res['stiffness_visited']:.2f}; {a}")

# %% [markdown]
# Next: notebook 3 (`03_regulator.py`), the regulators f.
