"""Record the default noise's regression values (tests/test_regression.py).

    python tests/data/record_counter.py   # from the repository root

Run once, when `CounterNoise()` became the default; rerunning must reproduce the files.
"""

import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parents[1]))
# As the suite runs (tests/conftest.py): gradients differ in the 4th digit otherwise.
jax.config.update("jax_disable_most_optimizations", True)

from test_regression import COUNTER, DATA, measure, quick_objective  # noqa: E402

import diffgrn  # noqa: E402

quick, full = {}, {}
for boundary in ("open", "pinned", "periodic"):
    for name, v in measure(quick_objective(boundary, COUNTER)).items():
        quick[f"{boundary}/{name}"] = v
    objective = diffgrn.Objective(tissue=diffgrn.Chain(7, boundary))
    for name, v in measure(objective.replace(dynamics=diffgrn.Dynamics(noise=COUNTER))).items():
        full[f"{boundary}/{name}"] = v
(DATA / "chain_regression_counter_quick.json").write_text(json.dumps(quick, indent=1) + "\n")
(DATA / "chain_regression_counter.json").write_text(json.dumps(full, indent=1) + "\n")
print(json.dumps(quick, indent=1))
