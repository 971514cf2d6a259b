"""The default 1-gene chain gives the same numbers as before states became
(replicates, cells, genes) and tissues neighbour tables.

The values in tests/data were recorded with the code of commit fd6ce91 (before that
change): `chain_regression.json` at the Objective's defaults (T = 20, dt = 0.01,
R = 100), `chain_regression_quick.json` at T = 2, dt = 0.05, R = 16; utilities with
key 42, the gradient norm of U_soft with key 7 and 25 replicates. That code drew
the noise on the step grid: `GridNoise()` reproduces it.

`chain_regression_counter*.json` hold the same quantities for the default noise
(`CounterNoise()`, drawn inside each step), recorded when it became the default
(diffgrn 0.5; `python tests/data/record_counter.py`).
"""

import json
from pathlib import Path

import equinox as eqx
import jax.random as jr
import pytest

import diffgrn

DATA = Path(__file__).parent / "data"
REGULATORS = {
    "mlp_default": lambda: diffgrn.MLPRegulator(key=jr.key(0)),
    "tanh": lambda: diffgrn.TanhRegulator(1.0, 6.0, 0.4),
}


GRID = diffgrn.GridNoise()
COUNTER = diffgrn.CounterNoise()


def quick_objective(boundary, noise):
    return diffgrn.Objective(
        tissue=diffgrn.Chain(7, boundary),
        dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.05, noise=noise),
        replicates=16,
    )


def measure(objective, gradients=("mlp_default", "tanh")):
    """The recorded quantities of each regulator on `objective`."""
    out = {}
    for name, make in REGULATORS.items():
        reg = make()
        hard, soft = eqx.filter_jit(objective.evaluate)(reg, jr.key(42))
        out[name] = dict(hard=float(hard.value), soft=float(soft.value))
        if name in gradients:
            grad = eqx.filter_grad(lambda r: objective.soft(r, jr.key(7), replicates=25).value)(reg)
            out[name]["grad_norm"] = float(diffgrn.diagnostics.tree_norm(grad))
    return out


def check(objective, recorded, boundary, gradients=("mlp_default", "tanh")):
    for name, make in REGULATORS.items():
        reg = make()
        hard, soft = eqx.filter_jit(objective.evaluate)(reg, jr.key(42))
        want = recorded[f"{boundary}/{name}"]
        assert float(hard.value) == pytest.approx(want["hard"], abs=1e-6)
        assert float(soft.value) == pytest.approx(want["soft"], abs=1e-6)
        if name in gradients:
            grad = eqx.filter_grad(lambda r: objective.soft(r, jr.key(7), replicates=25).value)(reg)
            assert float(diffgrn.diagnostics.tree_norm(grad)) == pytest.approx(
                want["grad_norm"], rel=1e-4, abs=1e-7
            )


@pytest.mark.parametrize("boundary", ["open", "pinned", "periodic"])
def test_quick_chain_matches_recorded_values(boundary):
    recorded = json.loads((DATA / "chain_regression_quick.json").read_text())
    # Gradients on one boundary here (compile time); all of them in the slow test.
    grads = ("mlp_default",) if boundary == "pinned" else ()
    check(quick_objective(boundary, GRID), recorded, boundary, grads)


@pytest.mark.parametrize("boundary", ["open", "pinned"])
def test_quick_chain_default_noise_matches_recorded_values(boundary):
    recorded = json.loads((DATA / "chain_regression_counter_quick.json").read_text())
    grads = ("tanh",) if boundary == "open" else ()
    check(quick_objective(boundary, COUNTER), recorded, boundary, grads)


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["open", "pinned", "periodic"])
@pytest.mark.parametrize(
    "noise, data", [(GRID, "chain_regression.json"), (COUNTER, "chain_regression_counter.json")]
)
def test_default_chain_matches_recorded_values(boundary, noise, data):
    recorded = json.loads((DATA / data).read_text())
    objective = diffgrn.Objective(tissue=diffgrn.Chain(7, boundary))
    check(objective.replace(dynamics=diffgrn.Dynamics(noise=noise)), recorded, boundary)
