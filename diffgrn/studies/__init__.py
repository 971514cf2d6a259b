"""Gradient-diagnostic studies: `python -m diffgrn.studies.NAME` or `diffgrn study NAME`."""

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
)
