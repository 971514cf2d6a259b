"""Discovery: descriptors, the explore loop, libraries, target patterns."""

import json

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffgrn
from diffgrn.cli import main as cli_main
from diffgrn.discovery import (
    IMGEP,
    Boundaries,
    Descriptor,
    DominantPattern,
    FateFraction,
    LikeNeighbours,
    RandomExploration,
    Reproducibility,
    explore,
    load_library,
    neighbour_pairs,
    occupied,
)
from diffgrn.utility import ExactHits, TargetPattern, dominant_pattern


def _fates(rows):
    return jnp.asarray(rows, jnp.float32)[..., None]  # (R, N, 1)


def test_descriptors_values_and_ranges():
    obj = diffgrn.Objective(tissue=diffgrn.Chain(4), replicates=4)
    pairs = jnp.asarray(neighbour_pairs(obj))
    assert pairs.tolist() == [[0, 1], [1, 2], [2, 3]]
    alternating = _fates([[0, 1, 0, 1]] * 4)
    uniform = _fates([[1, 1, 1, 1]] * 4)
    mixed = _fates([[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1], [0, 1, 0, 1]])
    s = jnp.zeros((4, 4, 1))
    for fates, fraction, bounds_, like, s_rep, dominant in (
        (alternating, 0.5, 3 / 4, 0.0, 0.0, 1.0),
        (uniform, 1.0, 0.0, 1.0, 0.0, 1.0),
        (mixed, 0.5, 1.5 / 4, 0.5, 1.5 / 4, 0.5),
    ):
        assert float(FateFraction()(fates, s, pairs)) == pytest.approx(fraction)
        assert float(Boundaries()(fates, s, pairs)) == pytest.approx(bounds_)
        assert float(LikeNeighbours()(fates, s, pairs)) == pytest.approx(like)
        assert float(Reproducibility()(fates, s, pairs)) == pytest.approx(s_rep)
        assert float(DominantPattern()(fates, s, pairs)) == pytest.approx(dominant)
    # Documented ranges: a chain of N has N − 1 pairs; S_rep ≤ log₂ R / N.
    assert Boundaries().bounds(obj) == (0.0, 3 / 4)
    assert Reproducibility().bounds(obj) == (0.0, pytest.approx(np.log2(4) / 4))
    pattern, freq = dominant_pattern(mixed)
    assert pattern[:, 0].tolist() == [0, 1, 0, 1] and float(freq) == 0.5


def test_lattice_pairs_and_custom_descriptor():
    obj = diffgrn.Objective(tissue=diffgrn.Lattice(3, 3, boundary="open"), replicates=4)
    assert len(neighbour_pairs(obj)) == 12  # 3 × 2 horizontal + 2 × 3 vertical
    d = Descriptor(lambda f, s, p: jnp.mean(s), 0.0, 1.0, "mean state")
    assert d.bounds(obj) == (0.0, 1.0) and d.name == "mean state"
    with pytest.raises(ValueError, match="low < high"):
        Descriptor(lambda f, s, p: 0.0, 1.0, 1.0)


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_explore_both_methods_and_library_round_trip(tmp_path):
    obj = diffgrn.Objective(
        tissue=diffgrn.Chain(5),
        dynamics=diffgrn.Dynamics(t_final=2.0, dt=0.05),
        replicates=8,
    )
    reg = diffgrn.MLPRegulator(key=jr.key(0))
    libs = {
        m: explore(obj, reg, s, budget=24, batch=8, key=jr.key(1), progress=False)
        for m, s in (("random", RandomExploration()), ("imgep", IMGEP()))
    }
    for lib in libs.values():
        assert len(lib) == 24 and lib.params.shape == (24, reg_size(reg))
        assert [c[0] for c in lib.coverage] == [8, 16, 24]
        assert lib.coverage[-1][1] == lib.filled() == occupied(lib.descriptors, lib.bounds, 20)
        for j, (lo, hi) in enumerate(lib.bounds):
            assert np.all((lib.descriptors[:, j] >= lo) & (lib.descriptors[:, j] <= hi))
        # A library row's regulator reproduces its descriptors' utility on its own draw.
        assert np.all(np.isin(lib.patterns, (0, 1)))
    # Both start from the same random round (same key): the first 8 rows agree.
    np.testing.assert_array_equal(libs["random"].params[:8], libs["imgep"].params[:8])
    # IMGEP's later rows are mutations of earlier ones (close in parameters), random's
    # are independent draws around θ₀.
    lib = libs["imgep"]
    lib.save(tmp_path / "lib")
    back = load_library(tmp_path / "lib")
    np.testing.assert_array_equal(back.params, lib.params)
    np.testing.assert_array_equal(back.patterns, lib.patterns)
    assert back.coverage == lib.coverage and back.names == lib.names
    assert back.config["method"] == IMGEP().config()
    np.testing.assert_allclose(
        np.asarray(diffgrn.count_parameters(back.regulator(5))), reg_size(reg)
    )
    (tmp_path / "lib" / "library.eqx").write_bytes(b"broken")
    with pytest.raises(ValueError, match="does not match"):
        load_library(tmp_path / "lib")
    i = lib.nearest_pattern("01010")
    d = np.abs(lib.patterns - np.array([0, 1, 0, 1, 0])).sum(1)
    assert d[i] == d.min()


def reg_size(reg):
    return diffgrn.count_parameters(reg)


def test_explore_validation(small_objective, mlp, without_type_checks):
    with pytest.raises(ValueError, match="explore.strategy.*IMGEP"):
        explore(small_objective, mlp, "grid", budget=4, key=jr.key(0))
    with pytest.raises(ValueError, match="explore.budget"):
        explore(small_objective, mlp, budget=0, key=jr.key(0))
    with pytest.raises(ValueError, match="FateFraction.gene = 1"):
        explore(small_objective, mlp, budget=4, key=jr.key(0), descriptors=[FateFraction(1)])
    with pytest.raises(ValueError, match="unknown descriptor 'colour'"):
        explore(small_objective, mlp, budget=4, key=jr.key(0), descriptors="fraction,colour")


def test_target_pattern_utility_hard_and_soft():
    t = TargetPattern("0110")
    hit = _fates([[0, 1, 1, 0], [0, 1, 1, 1]])
    u = t.hard(hit)
    assert float(u.value) == pytest.approx(7 / 8) and float(u.s_rep) == pytest.approx(0.5)
    assert float(TargetPattern("0110", ExactHits()).hard(hit).value) == pytest.approx(0.5)
    soft = jnp.asarray([[0.1, 0.9, 0.8, 0.3]])[..., None]
    assert float(t.soft(soft, 0.5).value) == pytest.approx((0.9 + 0.9 + 0.8 + 0.7) / 4)
    h = TargetPattern("0110", ExactHits()).soft(soft, 0.5).value
    assert float(h) == pytest.approx(0.9 * 0.9 * 0.8 * 0.7)
    with pytest.raises(ValueError, match="string of 0 and 1"):
        TargetPattern("01x0")
    with pytest.raises(ValueError, match="4 cells"):
        diffgrn.Objective(tissue=diffgrn.Chain(7), utility=t)
    obj = diffgrn.Objective(tissue=diffgrn.Chain(4), utility=t)
    assert diffgrn.Objective.from_config(obj.config()).utility == t


@pytest.mark.slow  # a gradient compile for a new utility: CI runs it after the README suite
def test_target_pattern_trains_with_adam(small_objective):
    """The pathwise gradient of the soft agreement reaches the hard agreement: from
    f ≈ 0 (fates at chance) to a network that drives every cell to fate 1."""
    obj = small_objective.replace(utility=TargetPattern("11111"))
    reg = diffgrn.MLPRegulator(key=jr.key(2))
    before = float(obj.hard(reg, jr.key(9)).value)
    res = diffgrn.train(obj, reg, "adam", key=jr.key(3), iterations=30, progress=False)
    after = float(obj.hard(res.best_regulator, jr.key(9)).value)
    assert before < 0.8 and after > 0.95, (before, after)


def test_cli_explore_writes_libraries_and_figures(tmp_path, capsys):
    out = tmp_path / "ex"
    argv = ["explore", "--budget", "16", "--batch", "8", "--cells", "5", "--t-final", "1",
            "--dt", "0.05", "--replicates", "8"]  # fmt: skip
    assert cli_main([*argv, "--no-progress", "--out", str(out)]) == 0
    for f in ("coverage.png", "explore.json", "imgep/gallery.png", "random/descriptors.png"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "explore.json").read_text())
    assert set(summary["filled"]) == {"imgep", "random"}
    assert load_library(out / "random").config["budget"] == 16
    assert "imgep" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["explore", "--method", "grid", "--out", str(tmp_path / "x")])
    assert "imgep, random or both" in capsys.readouterr().err


def small_library(template, n: int = 3, **extra):
    """A library of `n` rows built by hand (no simulation)."""
    from diffgrn.discovery import Library

    p = len(jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(template)]))
    return Library(params=np.arange(n * p, dtype=np.float32).reshape(n, p) / 10,
                   descriptors=np.zeros((n, 1)), utility=np.zeros(n), patterns=np.zeros((n, 7)),
                   coverage=[], names=["fraction"], bounds=[(0.0, 1.0)], bins=4,
                   template=template, config={}, **extra)  # fmt: skip


def test_library_rows_are_checked_naming_the_call():
    lib = small_library(diffgrn.TanhRegulator())
    assert float(lib.regulator(2).c) == pytest.approx(float(lib.params[2, 2]))
    assert list(lib.rows([0, 2])) == [0, 2]
    for bad in (3, -1, True):
        with pytest.raises(ValueError, match=r"regulator's row must be row numbers in \[0, 3\)"):
            lib.regulator(bad)
    for bad in ([0, 5], np.array([1.5]), np.array([[0]]), np.array([True]), [], np.array([], int)):
        with pytest.raises(ValueError, match=r"^rows must be row numbers in \[0, 3\)"):
            lib.rows(bad)


def test_library_regulator_takes_one_row(without_type_checks):
    lib = small_library(diffgrn.TanhRegulator())
    with pytest.raises(ValueError, match="Library.regulator takes one row number"):
        lib.regulator([1, 2])
