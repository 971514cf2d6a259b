# %% [markdown]
# # 5. Backpropagation: why it failed, what makes it work, where it is trapped
#
# The simulation is differentiable: `Objective.soft` scores fates in [0, 1] with a
# sigmoid readout and a kernel estimate of S_rep, and JAX differentiates through
# every Euler step. The first version of this model trained Adam that way and its
# gradient was exactly zero. This notebook measures why, applies the recipe that makes
# Adam work on the open chain, shows the pinned chain's trap, and compares gradient
# estimators of the hard utility itself. docs/studies.md and docs/comparison.md hold
# the full-size measurements.

# %%
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import diffgrn
from diffgrn import diagnostics as dg
from diffgrn import plotting

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
STEPS = 15 if QUICK else 40
DYN = dict(t_final=10.0, dt=0.02)  # shorter than the first model's T = 20 (a minute)

# %% [markdown]
# ## Why the first version's gradient was zero
#
# The first version: Equinox's default initialisation of the MLP (`output_scale=1`),
# σ = 0.001, a straight-through threshold and then a sigmoid (τ = 5), a KDE of
# bandwidth h = 0.05. For three random networks we measure the gradient of U_soft,
# the fraction of final states on a wall of the clip, and the same gradient
# without the clip (`Dynamics(constraint=Unconstrained())`).

# %%
first = diffgrn.Objective(
    dynamics=diffgrn.Dynamics(sigma=0.001, **DYN),
    readout=diffgrn.ChainedReadout(diffgrn.StraightThroughReadout(), diffgrn.SoftReadout(5.0)),
    bandwidth=0.05,
    replicates=50,
)
unclipped = first.replace(
    dynamics=diffgrn.Dynamics(sigma=0.001, constraint=diffgrn.Unconstrained(), **DYN)
)


@eqx.filter_jit
def probe(objective, regulator, key):
    states = objective.simulate(regulator, key)
    grad = eqx.filter_grad(lambda r: objective.soft(r, key).value)(regulator)
    return dg.tree_norm(grad), jnp.mean((states <= 0.0) | (states >= 1.0))


for seed in range(3):
    net = diffgrn.MLPRegulator(key=jr.key(seed), output_scale=1.0)
    norm, walls = probe(first, net, jr.key(10))
    free, _ = probe(unclipped, net, jr.key(10))
    print(
        f"network {seed}: |grad U_soft| = {float(norm):.3g} with the clip "
        f"({float(walls):.0%} of final states on a wall), {float(free):.3g} without it"
    )

# %% [markdown]
# With the clip, every final state sits on a wall, where the clip's derivative is
# zero, and σ = 0.001 never moves a cell off it: every path from θ to U is cut, so
# the gradient is exactly 0 and Adam never moves. (The narrow kernel adds a second
# cut: distinct patterns at h = 0.05 have kernel weight e^(−144), zero in float32,
# so S_rep passes no gradient either.)
#
# ## The recipe
#
# What makes Adam work on the open chain (measured in docs/comparison.md): start from
# f ≈ 0 (the MLP's output layer × 0.01, the default), so cells are still undecided at
# T and the gradient has something to follow; a KDE bandwidth h = 0.5, so distinct
# patterns overlap and S_rep has a gradient; 25 replicates per pathwise estimate;
# Adam at 3e-2 with global-norm clipping. Below: the recipe against the same run from
# Equinox's initialisation.

# %%
objective = diffgrn.Objective(dynamics=diffgrn.Dynamics(**DYN), replicates=50)
adam = diffgrn.Gradient(diffgrn.ClippedAdam(3e-2, 1.0), diffgrn.Pathwise(replicates=25))
runs = {
    "recipe (output × 0.01)": diffgrn.MLPRegulator(key=jr.key(0)),
    "Equinox init (output × 1)": diffgrn.MLPRegulator(key=jr.key(0), output_scale=1.0),
}
results = {
    name: diffgrn.train(objective, reg, adam, key=jr.key(1), iterations=STEPS, progress=False)
    for name, reg in runs.items()
}
plotting.plot_histories({n: r.history for n, r in results.items()})
plt.show()
for name, r in results.items():
    a = diffgrn.assess(objective, r.best_regulator, key=jr.key(99), refine=None)
    print(f"{name:28s} {a}")

# %% [markdown]
# ## The pinned trap
#
# Pin both ends of the chain at 0 and gradient training finds 0111110: every free
# cell driven up. It is a local optimum: the better alternating pattern 0101010 is
# on the far side of a dip. We measure the hard utility along the straight line
# between two reference regulators of one family, f ≈ +10 everywhere (0111110) and
# lateral inhibition a = 3, b = 3 (0101010), on common noise.

# %%
pinned = objective.replace(tissue=diffgrn.Chain(7, boundary="pinned"))
trapped = diffgrn.TanhRegulator(10.0, -10.0, -1.0)  # a·tanh(−b(s̄ − c)) ≈ +10
escaped = diffgrn.TanhRegulator(3.0, 3.0, 0.5)


@eqx.filter_jit
def along_line(obj, a, b, alphas, keys):
    pa, static = eqx.partition(a, eqx.is_inexact_array)
    pb = eqx.filter(b, eqx.is_inexact_array)

    def at(alpha):
        reg = eqx.combine(jax.tree.map(lambda x, y: (1 - alpha) * x + alpha * y, pa, pb), static)
        return jnp.mean(jax.vmap(lambda k: obj.hard(reg, k).value)(keys))

    return jax.lax.map(at, alphas)


alphas = jnp.linspace(0.0, 1.0, 11 if QUICK else 21)
u_line = along_line(pinned, trapped, escaped, alphas, jr.split(jr.key(5), 4))
plt.figure(figsize=(6, 3.6))
plt.plot(alphas, u_line, "o-")
plt.xlabel("α: (1 − α)·trapped + α·escaped")
plt.ylabel("hard U (bits per cell)")
plt.title("pinned chain: 0111110 (α = 0) to 0101010 (α = 1)", fontsize=10)
plt.show()

# %% [markdown]
# On the full-size pinned chain Adam at the recipe stays at 0111110 on 5 of 5 seeds;
# a wide kernel (`bandwidth=2` with `temperature=10`, or `--bandwidth 2
# --temperature 10`) leaves it, and CMA-ES finds 0101010 most precisely
# (docs/comparison.md).
#
# ## Gradient estimators of the hard utility
#
# The pathwise gradient is of the *soft* surrogate. Two estimators aim at ∇E[U_hard]
# itself: `LikelihoodRatio` (the path-space score function: unbiased, clip included)
# and `AntitheticES` (Gaussian smoothing in parameter space). For the 3-parameter tanh
# regulator at a short horizon (T = 2, where all three carry signal) we draw each
# several times and compare their mean direction with a central finite difference of
# E[U_hard] over many batches on common noise, and their spread.

# %%
reg = diffgrn.TanhRegulator(1.0, 6.0, 0.4)
small = objective.replace(dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.02), replicates=32)
estimators = {
    "pathwise (∇U_soft)": diffgrn.Pathwise(),
    "likelihood ratio": diffgrn.LikelihoodRatio(),
    "antithetic ES": diffgrn.AntitheticES(sigma=0.05, pairs=8),
}
draws = 8 if QUICK else 16
flat = lambda g: jnp.concatenate(
    [jnp.ravel(x) for x in jax.tree.leaves(eqx.filter(g, eqx.is_array))]
)


def mean_u(r, key):  # E[U_hard] over many batches, common noise on both sides
    keys = jr.split(key, 64 if QUICK else 256)
    return jnp.mean(jax.vmap(lambda k: small.hard(r, k).value)(keys))


truth = flat(eqx.filter_jit(dg.finite_difference_gradient)(mean_u, reg, jr.key(7), eps=0.05))

rows = {}
for name, est in estimators.items():
    one = eqx.filter_jit(lambda r, k, est=est: est(small, r, k)[0])
    g = np.stack([np.asarray(flat(one(reg, k))) for k in jr.split(jr.key(8), draws)])
    mean = g.mean(0)
    cos = float(mean @ truth / (np.linalg.norm(mean) * np.linalg.norm(truth) + 1e-12))
    snr = float(np.linalg.norm(mean) / (np.sqrt(np.trace(np.cov(g.T)) / draws) + 1e-12))
    rows[name] = (cos, snr, est.cost(small))
    print(
        f"{name:20s} cos(mean, finite difference) = {cos:+.2f}, |mean| / s.e. = {snr:.1f}, "
        f"{est.cost(small):.3g} replicate-steps per estimate"
    )

# %% [markdown]
# Read the cosines with their noise in mind (few draws here; docs/studies.md's
# `estimators` study measures bias and variance × cost properly against T, σ and
# N). Every estimator is an object for `diffgrn.Gradient(optimiser, estimator)`:
# `Mixture` and `InverseVariance` combine two of them.
#
# Next: notebook 6 (`06_tissues.py`), sheets of cells and several genes.
