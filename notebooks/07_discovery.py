# %% [markdown]
# # 7. Discovery: which patterns can a tissue make?
#
# Optimising one number finds one regulator. To map what a family of regulators can
# do, `diffgrn.explore` runs curiosity-driven exploration (IMGEP: sample a goal in a
# space of pattern descriptors, mutate the regulator found nearest it, simulate,
# store) and, for comparison, random search at the same number of simulations. Both
# are measured by how many bins of the descriptor space they fill. A pattern found
# there can then be made the objective: `TargetPattern`.

# %%
import os

import jax.random as jr
import matplotlib.pyplot as plt

import diffgrn
from diffgrn import plotting

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
BUDGET = 300 if QUICK else 1000

objective = diffgrn.Objective(
    tissue=diffgrn.Chain(7, boundary="open"),
    dynamics=diffgrn.Dynamics(t_final=5.0, dt=0.02),
    replicates=32,
)
regulator = diffgrn.MLPRegulator(key=jr.key(0))

# %% [markdown]
# ## IMGEP against random search
#
# The default descriptors: the fraction of cells in fate 1, fate boundaries per cell,
# and the frequency of the dominant pattern among the replicates (how reproducible
# the tissue is). Both methods get the same budget of simulations and the same first
# random round.

# %%
libraries = {
    "imgep": diffgrn.explore(
        objective, regulator, diffgrn.IMGEP(), budget=BUDGET, key=jr.key(2), progress=False
    ),
    "random": diffgrn.explore(
        objective, regulator, diffgrn.RandomExploration(), budget=BUDGET, key=jr.key(2),
        progress=False,
    ),
}  # fmt: skip
for name, lib in libraries.items():
    print(f"{name:7s} {len(lib)} regulators, {lib.filled()} occupied bins")
plotting.plot_coverage(libraries)
plt.show()

# %% [markdown]
# The descriptor space each method reached (one point per regulator), and a gallery
# of the dominant patterns IMGEP found:

# %%
plotting.plot_descriptor_space(libraries["imgep"], "imgep")
plt.show()
plotting.plot_gallery(libraries["imgep"], objective.tissue)
plt.show()

# %% [markdown]
# ## A chosen pattern as the objective
#
# `TargetPattern("1001001")` scores how well a tissue makes one pattern: by default the
# mean per-cell agreement (0.5 is chance), or with `ExactHits()` the fraction of
# replicates that make it exactly. Any method trains on it. The library gives a warm
# start: the regulator whose dominant pattern is nearest the target.

# %%
target = "1001001"
blocks = objective.replace(utility=diffgrn.TargetPattern(target))
nearest = libraries["imgep"].nearest_pattern(target)
start = libraries["imgep"].regulator(nearest)
print("nearest pattern found:", "".join(str(int(v)) for v in libraries["imgep"].patterns[nearest]))
for name, reg in (("random start", regulator), ("nearest discovery", start)):
    print(f"{name:18s}", diffgrn.assess(blocks, reg, key=jr.key(9), repeats=5, refine=None))

# %% [markdown]
# Fine-tune the discovery with CMA-ES toward the target, once on each score. The
# score is a modelling choice with consequences: the mean per-cell agreement rewards
# getting most cells right, which a uniform pattern does for a target with mostly one
# fate (docs/discovery.md measures this for Adam); exact hits reward only the whole
# pattern.

# %%
hits = objective.replace(utility=diffgrn.TargetPattern(target, diffgrn.ExactHits()))
for name, obj in (("agreement", blocks), ("exact hits", hits)):
    res = diffgrn.train(
        obj, start, "cmaes", key=jr.key(3), iterations=10 if QUICK else 30, progress=False
    )
    tuned = diffgrn.assess(blocks, res.best_regulator, key=jr.key(9), repeats=5, refine=None)
    print(f"CMA-ES on {name:10s}", tuned)

# %% [markdown]
# For a `TargetPattern`, `assess` reports the agreement and the fraction of exact hits
# (not S_pat and S_rep, which mean nothing there). `diffgrn explore --budget 2000`
# writes both libraries and their figures; docs/discovery.md has the measured results.
#
# Next: notebook 8 (`08_behaviour.py`), behaviour over time: oscillators.
