# %% [markdown]
# # 4. Training with ES and CMA-ES
#
# The hard utility is what we care about, and it is piecewise constant in the
# regulator's parameters: no gradient. Evolution strategies do not need one. diffgrn
# has the first model's (μ+λ)-ES (`"es"`, `diffgrn.MuPlusLambdaES`), CMA-ES
# (`"cmaes"`, `diffgrn.CMAES`), random search (`"random"`: the baseline to beat) and
# evosax's strategies (`diffgrn.Evosax("SNES")`, with `pip install "diffgrn[evosax]"`).
# All of them train through one loop, record one history format, and are judged the
# same way: on fresh noise.
#
# The sizes here are smaller than the first model's (T = 10 instead of 20, dt = 0.02,
# R = 50, 40 generations) so that the notebook runs in about a minute and a half on 2 cores;
# `diffgrn train --method es` runs the full size from the command line.

# %%
import os
import tempfile

import jax.random as jr
import matplotlib.pyplot as plt

import diffgrn
from diffgrn import plotting

QUICK = os.environ.get("DIFFGRN_NOTEBOOK_QUICK") == "1"  # smaller sizes (CI)
GENERATIONS = 20 if QUICK else 40

objective = diffgrn.Objective(
    tissue=diffgrn.Chain(7, boundary="open"),
    dynamics=diffgrn.Dynamics(t_final=10.0, dt=0.02),
    replicates=32 if QUICK else 50,
)
start = diffgrn.MLPRegulator(key=jr.key(0))  # the same start for every method

# %% [markdown]
# ## Train
#
# `diffgrn.train(objective, regulator, method, key=…, iterations=…)` returns a
# `TrainResult`: the best and final regulators, the history, the config. A method is a
# name or an object with its settings.

# %%
methods = {
    "es": diffgrn.MuPlusLambdaES(population=20, parents=5, mutation=0.1),
    "cmaes": diffgrn.CMAES(population=20, sigma=0.3),
    "random": diffgrn.RandomSearch(population=20),
}
results = {
    name: diffgrn.train(
        objective, start, method, key=jr.key(1), iterations=GENERATIONS, progress=False
    )
    for name, method in methods.items()
}

# %% [markdown]
# ## The history
#
# Every method records the same fields per iteration: the hard utility of its current
# candidate on that iteration's fresh draw (and its parts S_pat, S_rep), the soft
# utility and gradient norm (NaN for evolution strategies), the wall time inside the
# compiled steps, and the simulated replicate-steps (the cost that compares methods
# fairly across hardware).

# %%
histories = {name: r.history for name, r in results.items()}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
plotting.plot_histories(histories, "iteration", axes[0])
plotting.plot_histories(histories, "replicate_steps", axes[1])
axes[0].get_legend().remove()
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Which number to report
#
# A run shows several numbers. Only one is the result: the best regulator's hard
# utility on *fresh* noise, `diffgrn.assess` (keys no training step used), mean ±
# standard error over draws. The others are maxima over noisy draws, biased upward:
#
# - the best single draw in training (`max(history.hard_utility)`; the progress bar's
#   `best_draw`),
# - `best_utility`: the few best candidates re-assessed on a handful of draws, the
#   best mean (how `best_regulator` is chosen; still a maximum, so still biased).

# %%
reported = {}
for name, r in results.items():
    reported[name] = diffgrn.assess(objective, r.best_regulator, key=jr.key(99), refine=None)
    print(f"{name:7s} reported {reported[name]}")
    print(
        f"{'':7s} (not the result: best single draw {max(r.history.hard_utility):.4f}, "
        f"selection's re-assessment best_utility {r.best_utility:.4f})"
    )

# %% [markdown]
# At this small size and budget, read the table before believing any ranking: the
# methods may well end within a few standard errors of each other, and random search
# is the baseline every method must beat (docs/comparison.md compares them at the
# full size over five seeds).
#
# `plotting.plot_run` draws one run's curve with the selected iteration and the
# reported number (what `diffgrn train` writes as `training_curve.png`):

# %%
plotting.plot_run(results["cmaes"], reported["cmaes"], "cmaes, 7-cell open chain")
plt.show()
plotting.plot_regulator(results["cmaes"].best_regulator)
plt.show()

# %% [markdown]
# ## One run, one object
#
# `diffgrn.Run` describes a whole run (objective, starting regulator, method, budget,
# seed, checkpointing, output folder) as one object: `run.train()` trains it,
# `run.execute()` also writes its folder (what `diffgrn train` does), and its config
# is the `run.json` that `diffgrn train --config` and `diffgrn rerun` rebuild.

# %%
with tempfile.TemporaryDirectory() as tmp:
    run = diffgrn.Run(objective, start, diffgrn.CMAES(), iterations=5, seed=3, out=f"{tmp}/cmaes")
    result, fresh = run.execute(progress=False)
    print(sorted(p.name for p in run.folder.iterdir()))
    again = diffgrn.load_run(run.folder / "run.json")
    print("the same run:", again.config() == run.config())
    saved = diffgrn.load(run.folder / "best")
    print("saved regulator:", type(saved.regulator).__name__)

# %% [markdown]
# ## Comparing methods fairly
#
# `diffgrn.compare(objective, {"es": "es", "cmaes": "cmaes"}, key=…, seeds=5)` (or
# `diffgrn compare --methods es,cmaes --seeds 5`) trains every method from the same
# starts over seeds and tabulates the fresh-noise results, success rates and the
# cost to reach a target; docs/comparison.md has the measured comparison.
#
# Next: notebook 5 (`05_backpropagation.py`), gradients.
