# %% [markdown]
# # 1. The utility: U = S_pat − S_rep
#
# diffgrn scores a tissue by how much *information* its fate pattern carries, in bits
# per cell: **S_pat**, the entropy of the fates pooled over cells and replicates (many
# fates, used evenly), minus **S_rep**, the entropy of whole-tissue patterns across
# replicates divided by the number of cells N (the same pattern in every replicate).
# A tissue that makes one pattern every time, with half its cells in each fate,
# scores U = 1 bit per cell; a tissue whose cells flip coins scores U ≈ 0.
#
# This notebook computes U on fates we write by hand (no simulation yet), shows how it
# varies with the fate ratio and with pattern diversity, compares the exact (*hard*)
# utility with its differentiable (*soft*) kernel estimate, and writes a utility of
# our own. It runs in a few seconds.

# %%
import os

import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import diffgrn

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)

# %% [markdown]
# ## Hard utility of hand-made fates
#
# Fates are an array `(replicates R, cells N)` of 0/1. `hard_utility` returns the
# value and its two parts.

# %%
alternating = jnp.array([[0, 1, 0, 1, 0, 1, 0]] * 100, jnp.float32)  # R = 100 identical
coins = jr.bernoulli(jr.key(0), 0.5, (100, 7)).astype(jnp.float32)  # every cell a coin flip
for name, fates in (("same 0101010 in every replicate", alternating), ("coin flips", coins)):
    u = diffgrn.hard_utility(fates)
    print(f"{name:32s} U = {u.value:.3f}  S_pat = {u.s_pat:.3f}  S_rep = {u.s_rep:.3f}")

# %% [markdown]
# The alternating pattern has 3 of 7 cells in fate 1, so S_pat = H₂(3/7) = 0.985, and
# one pattern only, so S_rep = 0. Coin flips use both fates evenly (S_pat ≈ 1) but
# nearly every replicate differs: S_rep is close to its ceiling log₂ R / N
# = log₂ 100 / 7 = 0.95. That ceiling matters: with few replicates or many cells
# S_rep cannot grow large whatever the patterns, and U then measures S_pat alone
# (`diffgrn.assess` warns when log₂ R / N < 0.2).

# %% [markdown]
# ## How U varies with the fate ratio and with pattern diversity
#
# Left: every replicate makes the same pattern with k of N = 7 cells in fate 1, so
# U = S_pat = H₂(k/7). Right: the replicates make one of d distinct patterns (each
# balanced, drawn at random), so S_rep ≈ log₂ d / N grows and U falls.

# %%
n, r = 7, 100
ks = np.arange(n + 1)
u_ratio = [float(diffgrn.hard_utility(jnp.tile(jnp.arange(n) < k, (r, 1))).value) for k in ks]

rng = np.random.default_rng(0)
balanced = np.array([p for p in range(2**n) if bin(p).count("1") in (3, 4)])
diversity = [1, 2, 4, 8, 16, 32, 64] if not QUICK else [1, 4, 16, 64]
u_div, s_rep = [], []
for d in diversity:
    chosen = rng.choice(balanced, d, replace=False)
    rows = chosen[np.arange(r) % d]  # each pattern made by about R / d replicates
    fates = jnp.asarray((rows[:, None] >> np.arange(n)) & 1, jnp.float32)
    u = diffgrn.hard_utility(fates)
    u_div.append(float(u.value))
    s_rep.append(float(u.s_rep))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].plot(ks / n, u_ratio, "o-")
axes[0].set(
    xlabel="fraction of cells in fate 1",
    ylabel="U (bits per cell)",
    title="one pattern, every replicate",
)
axes[1].semilogx(diversity, u_div, "o-", label="U")
axes[1].semilogx(diversity, s_rep, "s--", label="S_rep")
axes[1].axhline(np.log2(r) / n, color="k", ls=":", label="log₂ R / N")
axes[1].set(
    xlabel="distinct patterns among R = 100 replicates",
    ylabel="bits per cell",
    title="balanced patterns, more and more of them",
)
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Hard and soft
#
# The hard utility counts distinct patterns exactly, so it is piecewise constant in the
# fates: its gradient is zero almost everywhere. Gradient training uses the **soft**
# utility instead: fates in [0, 1] from a sigmoid readout, and S_rep from a Gaussian
# kernel density estimate of the patterns with bandwidth h. Below: fates that are
# nearly binary (three distinct patterns, a little noise), scored hard and soft for a
# range of bandwidths. A narrow kernel (h = 0.05) sees every replicate as its own
# pattern (S_rep at its ceiling); a wide one (h = 2) merges distinct patterns. The
# package's default h = 0.5 sits between: close to the hard value here, and distinct
# patterns still overlap, so S_rep has a gradient (notebook 5).

# %%
three = jnp.asarray([[0, 1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0, 1], [0, 1, 1, 0, 0, 1, 0]])
near = jnp.clip(three[jnp.arange(r) % 3] + 0.15 * jr.normal(jr.key(1), (r, n)), 0, 1)
hard = diffgrn.hard_utility(near)
bandwidths = np.geomspace(0.05, 2.0, 12 if not QUICK else 6)
soft = [diffgrn.soft_utility(near, h) for h in bandwidths]
plt.figure(figsize=(6, 3.6))
plt.semilogx(bandwidths, [float(s.value) for s in soft], "o-", label="soft U")
plt.semilogx(bandwidths, [float(s.s_rep) for s in soft], "s--", label="soft S_rep")
plt.axhline(float(hard.value), color="C0", ls=":", label=f"hard U = {hard.value:.3f}")
plt.axhline(float(hard.s_rep), color="C1", ls=":", label=f"hard S_rep = {hard.s_rep:.3f}")
plt.axvline(0.5, color="k", lw=0.5)
plt.xlabel("KDE bandwidth h")
plt.ylabel("bits per cell")
plt.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Several genes: K = 2^m fates
#
# With m readout genes per cell (`Objective(fate_genes=(0, 1))`), each cell has one of
# K = 2^m fates and U ≤ log₂ K. Fates are then `(R, N, m)`:

# %%
two_genes = jnp.stack([alternating, 1 - alternating], axis=-1)  # fates 01 and 10 only
cycle = np.arange(n) % 4  # cells cycle through the fates 0, 1, 2, 3 (two gene bits each)
four = jnp.asarray(np.tile((cycle[:, None] >> np.arange(2)) & 1, (r, 1, 1)), jnp.float32)
print("2 genes, 2 of 4 fates used:", f"U = {diffgrn.hard_utility(two_genes).value:.3f}")
print("2 genes, all 4 fates used: ", f"U = {diffgrn.hard_utility(four).value:.3f} (≤ log₂ 4 = 2)")

# %% [markdown]
# ## Your own utility
#
# An objective's `utility` is an object: `PatternInformation()` (U, the default),
# `TargetPattern("1001001")` (make one chosen pattern; notebook 7), or your own
# `diffgrn.AbstractUtility` subclass with a `hard` and a `soft` method that take
# fates `(R, N, m)` and return a `diffgrn.Utility(value, part 1, part 2)`; `parts`
# names the two parts (what `assess` reports). Here: *alternation*, the fraction of
# neighbouring cells of a chain with different fates (lateral inhibition's
# signature), with the fraction of cells in fate 1 as the second part. The soft
# version scores fates in [0, 1] by the probability that neighbours differ, so it is
# differentiable and every method in diffgrn, gradient or evolutionary, can train on
# it.


# %%
class Alternation(diffgrn.AbstractUtility):
    """Fraction of neighbouring chain cells whose fates differ (first readout gene)."""

    parts = ("alternation", "fate_1_fraction")

    def hard(self, fates):
        z = (fates[..., 0] >= 0.5).astype(jnp.float32)  # (R, N)
        differ = jnp.abs(z[:, 1:] - z[:, :-1])
        return diffgrn.Utility(jnp.mean(differ), jnp.mean(differ), jnp.mean(z))

    def soft(self, fates, bandwidth):
        p = fates[..., 0]
        differ = p[:, 1:] * (1 - p[:, :-1]) + (1 - p[:, 1:]) * p[:, :-1]
        return diffgrn.Utility(jnp.mean(differ), jnp.mean(differ), jnp.mean(p))

    def upper(self, n_fates):
        return 1.0  # the largest value: what `compare --target` is checked against


objective = diffgrn.Objective(
    tissue=diffgrn.Chain(7),
    utility=Alternation(),
    dynamics=diffgrn.Dynamics(t_final=5.0, dt=0.02),
    replicates=32,
)
for regulator in (diffgrn.TanhRegulator(a=1.0, b=10.0, c=0.5), diffgrn.TanhRegulator(a=-1.0)):
    print(diffgrn.assess(objective, regulator, key=jr.key(2), repeats=5, refine=None))

# %% [markdown]
# Lateral inhibition (a > 0: a cell is pushed down when its neighbours are high)
# alternates; the opposite sign (a < 0: cells follow their neighbours) makes uniform
# blocks. `assess` returns an `Assessment`: the mean over fresh noise draws is the
# number to report; it is a dict too (`a["mean"]`), so it saves as JSON.
#
# Next: notebook 2 (`02_dynamics.py`), the dynamics that make these fates.
