"""`assess` returns an `Assessment`: dict access kept, attributes, a readable repr, the
utility's parts under their own names, and the S_rep bound warned about in Python."""

import json
import warnings

import jax.random as jr
import pytest

import diffgrn

FAST = diffgrn.Dynamics(t_final=1.0, dt=0.05)


def test_assessment_is_a_dict_with_attributes_and_a_readable_repr():
    objective = diffgrn.Objective(dynamics=FAST, replicates=16)
    a = diffgrn.assess(objective, diffgrn.TanhRegulator(), key=jr.key(0), repeats=3)
    assert isinstance(a, dict) and isinstance(a, diffgrn.Assessment)
    assert a.mean == a["mean"] == pytest.approx(sum(a.draws) / 3)
    assert a.draws == a["values"] and len(a.draws) == 3
    assert a.sem == pytest.approx(a.std / 3**0.5)
    assert a["s_pat"] - a["s_rep"] == pytest.approx(a.mean, abs=1e-5)
    text = repr(a)
    assert text.startswith(f"Assessment(U = {a.mean:.4f} ± {a.sem:.4f}")
    assert "3 fresh draws of 16 replicates" in text and "s_rep" in text and "dt/5" in text
    assert json.loads(json.dumps(a))["mean"] == a.mean  # still JSON as a dict


def test_a_target_pattern_reports_agreement_and_exact_hits_not_s_pat():
    objective = diffgrn.Objective(
        dynamics=FAST, replicates=16, utility=diffgrn.TargetPattern("1010101")
    )
    a = diffgrn.assess(objective, diffgrn.TanhRegulator(), key=jr.key(0), repeats=2, refine=None)
    assert a.parts == ["agreement", "exact_hits"]
    assert a.agreement == pytest.approx(a.mean)  # the default score is the agreement
    assert 0.0 <= a.exact_hits <= 1.0
    assert "s_pat" not in a and "TargetPattern score" in repr(a)
    with pytest.raises(KeyError, match="agreement"):
        a["s_rep"]


def test_the_s_rep_bound_is_a_python_warning():
    sheet = diffgrn.Objective(tissue=diffgrn.Lattice(6, 6), dynamics=FAST, replicates=16)
    with pytest.warns(diffgrn.ReproducibilityBoundWarning, match=r"log2\(R\) / N = 0.111"):
        diffgrn.assess(sheet, diffgrn.TanhRegulator(), key=jr.key(0), repeats=2, refine=None)
    chain = diffgrn.Objective(dynamics=FAST, replicates=16)  # log2(16) / 7 = 0.57: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", diffgrn.ReproducibilityBoundWarning)
        diffgrn.assess(chain, diffgrn.TanhRegulator(), key=jr.key(0), repeats=2, refine=None)
