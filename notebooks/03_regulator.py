# %% [markdown]
# # 3. The regulator: the MLP, the tanh reference, your own
#
# The regulator f(s, s̄) is the gene-regulatory network: it maps a cell's own genes s
# and its neighbours' mean s̄ to ds/dt. It is an Equinox module, so its parameters are
# a pytree that every method (evolutionary or gradient) updates the same way. Three
# come with diffgrn, and writing a fourth takes one small class.

# %%
import os

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt

import diffgrn
from diffgrn import plotting

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
objective = diffgrn.Objective(
    tissue=diffgrn.Chain(7),
    dynamics=diffgrn.Dynamics(t_final=5.0, dt=0.02) if QUICK else diffgrn.Dynamics(),
    replicates=32 if QUICK else 100,
)

# %% [markdown]
# ## The MLP
#
# `MLPRegulator` is the first model's network: 1 → 8 → 8 → 1 with tanh hidden layers,
# seeing s̄ only (`inputs="neighbours"`; `"both"` feeds (s, s̄)). Its output layer
# starts × 0.01 (`output_scale`), so f ≈ 0: cells are still undecided at T, the
# starting point from which both the ES and gradients can learn (notebook 5 shows
# what Equinox's default initialisation does instead).

# %%
mlp = diffgrn.MLPRegulator(key=jr.key(0))
both = diffgrn.MLPRegulator(key=jr.key(0), inputs="both", widths=(16, 16))
print("model.md's MLP:", diffgrn.count_parameters(mlp), "parameters")
print("own state too, 16 x 16:", diffgrn.count_parameters(both), "parameters")
print("f at s̄ = 0, ½, 1:", mlp(jnp.zeros((3, 1)), jnp.array([[0.0], [0.5], [1.0]])).ravel())

# %% [markdown]
# ## The reference: lateral inhibition
#
# `TanhRegulator(a, b, c)` is f(s̄) = a·tanh(−b(s̄ − c)), three trainable parameters:
# a cell is pushed down when its neighbours are above c. `plotting.plot_regulator`
# draws a regulator's f on the homogeneous states against this reference; a trained
# MLP that has learned lateral inhibition looks like the dashed curve.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
plotting.plot_regulator(mlp, axes[0])
axes[0].set_title("untrained MLP (f ≈ 0)", fontsize=10)
plotting.plot_regulator(diffgrn.TanhRegulator(a=1.0, b=10.0, c=0.5), axes[1])
axes[1].set_title("TanhRegulator(1, 10, 0.5)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A gene circuit
#
# `TranscriptionalRegulator(genes)` is ds/dt = sigmoid(W s + V s̄ + b) − k ⊙ s: W
# couples a cell's own genes, V its neighbours', k is a degradation rate kept
# positive (stored as log k). With two genes it needs an objective with two genes:
# `Objective(genes=2)` (notebook 6 uses it on a sheet).

# %%
circuit = diffgrn.TranscriptionalRegulator(2, key=jr.key(1))
print(circuit.W, circuit.V, circuit.k, sep="\n")

# %% [markdown]
# ## Your own regulator
#
# Subclass `diffgrn.AbstractRegulator`: declare the parameters as fields (arrays are
# trainable), set `genes`, and write `__call__(s, sbar)` on arrays `(..., genes)`.
# Here a Hill repressor: production 1 / (1 + (s̄ / K)ⁿ), degradation s.


# %%
class HillRepressor(diffgrn.AbstractRegulator):
    """ds/dt = 1 / (1 + (s̄ / K)^n) − s: a cell is repressed by its neighbours."""

    log_k: jnp.ndarray
    log_n: jnp.ndarray

    def __init__(self, k: float = 0.5, n: float = 4.0):
        self.log_k, self.log_n = jnp.log(jnp.asarray(k)), jnp.log(jnp.asarray(n))
        self.genes = 1

    def __call__(self, s, sbar):
        ratio = jnp.clip(sbar, 1e-6, None) / jnp.exp(self.log_k)
        return 1.0 / (1.0 + ratio ** jnp.exp(self.log_n)) - s


# %% [markdown]
# Every regulator goes through the same pipeline: simulate, assess, train.

# %%
regulators = {
    "untrained MLP": mlp,
    "tanh lateral inhibition": diffgrn.TanhRegulator(),
    "Hill repressor, n = 4": HillRepressor(),
    "Hill repressor, n = 12": HillRepressor(n=12.0),
}
for name, regulator in regulators.items():
    a = diffgrn.assess(objective, regulator, key=jr.key(2), repeats=3, refine=None)
    print(f"{name:24s}", a)

# %% [markdown]
# The untrained MLP (f ≈ 0) leaves the cells to the noise: S_pat ≈ 1 but nearly
# every replicate differs. The repressors make reproducible patterns; which K and n
# is best is a question for training (CMA-ES on the two parameters; notebook 4
# explains the methods):

# %%
result = diffgrn.train(
    objective, HillRepressor(), "cmaes", key=jr.key(3), iterations=10 if QUICK else 20,
    progress=False,
)  # fmt: skip
best = result.best_regulator
print(f"K = {float(jnp.exp(best.log_k)):.3f}, n = {float(jnp.exp(best.log_n)):.2f}")
print(diffgrn.assess(objective, best, key=jr.key(4), repeats=5))
states = eqx.filter_jit(objective.simulate)(best, jr.key(5))
fig, ax = plt.subplots(figsize=(4, 4))
plotting.plot_patterns(states[..., 0], ax)
ax.set_title("trained Hill repressor: fates on fresh noise", fontsize=10)
plt.show()

# %% [markdown]
# Next: notebook 4 (`04_training.py`), training with ES and CMA-ES.
