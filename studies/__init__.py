"""Gradient-diagnostic studies, run from a checkout of diffgrn (not installed):
`python -m studies` lists them, `python -m studies NAME` (or `python -m studies.NAME`)
runs one."""

STUDIES = (
    "stage_attribution",
    "horizon",
    "noise_replicates",
    "bias",
    "landscape",
    "first_version",
    "recipe",
    "traps",
    "resolution",
    "scaling",
    "estimators",
    "discovery",
    "population",
    "oscillators",
    "coupled",
    "goal_gradient",
    "crossover",
)
