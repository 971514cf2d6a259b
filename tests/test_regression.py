"""The default 1-gene chain gives the same numbers as before states became
(replicates, cells, genes) and tissues neighbour tables (values recorded on main before
that change, by the script in this file's docstring history: Objective at its defaults
on each boundary, key 42 for utilities, key 7 and 25 replicates for the gradient)."""

import json
from pathlib import Path

import equinox as eqx
import jax.random as jr
import pytest

import diffgrn

RECORDED = json.loads((Path(__file__).parent / "data" / "chain_regression.json").read_text())
REGULATORS = {
    "mlp_default": lambda: diffgrn.MLPRegulator(key=jr.key(0)),
    "tanh": lambda: diffgrn.TanhRegulator(1.0, 6.0, 0.4),
}


@pytest.mark.parametrize("boundary", ["open", "pinned", "periodic"])
def test_default_chain_matches_recorded_values(boundary):
    objective = diffgrn.Objective(tissue=diffgrn.Chain(7, boundary))
    for name, make in REGULATORS.items():
        reg = make()
        hard, soft = eqx.filter_jit(objective.evaluate)(reg, jr.key(42))
        grad = eqx.filter_grad(
            lambda r: objective.soft(r, jr.key(7), replicates=25).value)(reg)
        want = RECORDED[f"{boundary}/{name}"]
        assert float(hard.value) == pytest.approx(want["hard"], abs=1e-6)
        assert float(soft.value) == pytest.approx(want["soft"], abs=1e-6)
        assert float(diffgrn.diagnostics.tree_norm(grad)) == pytest.approx(
            want["grad_norm"], rel=1e-4, abs=1e-7)
