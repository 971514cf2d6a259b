# %% [markdown]
# # 6. Tissues: a hex sheet with two genes, Notch–Delta
#
# The chain is one tissue among many: `Lattice(rows, cols, geometry="square" | "hex",
# boundary)` is a 2-D sheet (hex: odd-r offset coordinates, six neighbours) and
# `Graph(n_cells, edges, pinned=…)` any neighbourhood. A tissue is a table of
# neighbour indices, so the cost per cell-step is flat in the number of cells. Cells
# can carry several genes, and any of them can be read out: with m readout genes a
# cell has one of K = 2^m fates and U ≤ log₂ K.

# %%
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import diffgrn
from diffgrn import plotting

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
SIDE = 6 if QUICK else 10

# %% [markdown]
# ## A hex sheet, two genes, both read out
#
# A regulator that sees the cell's own genes and its neighbours' mean
# (`inputs="both"`), two genes with their own noise levels, both genes read out: four
# fates per cell. Adam trains it on the soft utility (notebook 5's recipe).

# %%
sheet = diffgrn.Objective(
    tissue=diffgrn.Lattice(SIDE, SIDE, geometry="hex"),
    genes=2,
    fate_genes=(0, 1),
    dynamics=diffgrn.Dynamics(t_final=5.0, dt=0.02, sigma=(0.1, 0.05)),
    replicates=64,
)
mlp = diffgrn.MLPRegulator(key=jr.key(0), genes=2, inputs="both")
print(f"log2(R) / N = {np.log2(sheet.replicates) / sheet.n_cells:.3f}")
result = diffgrn.train(sheet, mlp, "adam", key=jr.key(1), iterations=15 if QUICK else 40,
                       progress=False)  # fmt: skip
fresh = diffgrn.assess(sheet, result.best_regulator, key=jr.key(99), refine=None)
print(fresh)

# %% [markdown]
# `assess` warned: with R = 64 replicates of N = SIDE² cells, S_rep ≤ log₂ R / N
# (printed above) whatever the patterns, so U here measures S_pat (how evenly the
# four fates are used) and says little about reproducibility. On a sheet, look at
# the fate maps: below, three replicates and each cell's most frequent fate with its
# frequency.

# %%
states = eqx.filter_jit(sheet.simulate)(result.best_regulator, jr.key(5))
fates = sheet.fates(states, diffgrn.HardReadout())
fig = plotting.plot_tissue_fates(sheet.tissue, fates, n_fates=sheet.n_fates)
plt.show()

# %% [markdown]
# ## Notch–Delta lateral inhibition
#
# Collier et al.'s (1996) model, written as a user regulator: Notch n (gene 0) is
# activated by the neighbours' Delta, Delta d (gene 1) is repressed by the cell's own
# Notch,
#
# dn/dt = d̄² / (0.01 + d̄²) − n,  dd/dt = 1 / (1 + 100 n²) − d.
#
# On a hex sheet it grows a salt-and-pepper pattern: high-Delta cells that never
# touch, at most a third of the sheet.


# %%
class NotchDelta(diffgrn.AbstractRegulator):
    a: jax.Array  # Notch activation threshold (squared)
    b: jax.Array  # Delta repression strength
    v: jax.Array  # Delta's rate relative to Notch's

    def __init__(self, a=0.01, b=100.0, v=1.0):
        self.a, self.b, self.v = (jnp.asarray(x, jnp.float32) for x in (a, b, v))
        self.genes = 2

    def __call__(self, s, sbar):  # (..., 2) = (Notch, Delta)
        n, dbar = s[..., 0], sbar[..., 1]
        dn = dbar**2 / (self.a + dbar**2) - n
        dd = self.v * (1.0 / (1.0 + self.b * n**2) - s[..., 1])
        return jnp.stack([dn, dd], axis=-1)


side = 8 if QUICK else 12
hexes = diffgrn.Lattice(side, side, geometry="hex", boundary="periodic")
notch = diffgrn.Objective(
    tissue=hexes,
    genes=2,
    fate_genes=(1,),  # read out Delta
    dynamics=diffgrn.Dynamics(t_final=60.0 if QUICK else 150.0, dt=0.02, sigma=0.01),
    replicates=4,
)
states = eqx.filter_jit(notch.simulate)(NotchDelta(), jr.key(0))
high = np.asarray(states[..., 1]) >= 0.5
pairs = hexes.neighbour_pairs()
touching = (high[:, pairs[:, 0]] & high[:, pairs[:, 1]]).sum(axis=1)
print("high-Delta fraction per replicate:", np.round(high.mean(axis=1), 3))
print("touching high-Delta pairs per replicate:", touching)

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for i, ax in enumerate(axes):
    plotting.plot_tissue(hexes, states[i, :, 1], ax, cmap="magma", vmin=0, vmax=1)
    ax.set_title(f"replicate {i}: Delta (bright: high)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# The same model's parameters are arrays, so `diffgrn.train(notch, NotchDelta(), "cmaes",
# …)` tunes them like any regulator's; examples/notch_delta.py is this cell as a
# script.
#
# Next: notebook 7 (`07_discovery.py`), which patterns a tissue can make.
