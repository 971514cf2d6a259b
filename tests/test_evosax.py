"""evosax strategies as diffgrn methods (needs: pip install "diffgrn[evosax]")."""

import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import diffgrn
from diffgrn.cli import main as cli_main

evosax = pytest.importorskip("evosax")

from test_methods import Sphere  # noqa: E402


@pytest.mark.parametrize("name", ["CMA_ES", "Sep_CMA_ES", "SNES"])
def test_evosax_strategy_converges_on_a_sphere(name):
    """Maximising diffgrn's utility = minimising evosax's fitness: the sign is right."""
    reg = diffgrn.TanhRegulator(0.0, 0.0, 0.0)  # optimum (1, 1, 1), fitness −‖θ − 1‖²
    trainer = diffgrn.Evosax(name, population=8, sigma=0.5).build(Sphere(), reg)
    step = jax.jit(trainer.step)
    state = trainer.init(jr.key(0))
    for i in range(100):
        state, info = step(state, jr.key(i))
        assert bool(info.finite)
    flat = jnp.asarray(
        [trainer.candidate(state).a, trainer.candidate(state).b, trainer.candidate(state).c]
    )
    assert jnp.linalg.norm(flat - 1.0) < 0.05, flat


def test_evosax_through_train_and_names(small_objective, mlp):
    res = diffgrn.train(
        small_objective,
        mlp,
        "evosax:Sep_CMA_ES",
        key=jr.key(0),
        iterations=3,
        progress=False,
        select_top=1,
    )
    assert res.error is None and len(res.history) == 3
    assert res.config["method"] == diffgrn.Evosax("Sep_CMA_ES").config()
    assert res.history.replicate_steps[0] == 20 * small_objective.replicate_steps
    # the same accounting as the ES, and configurable strategy parameters
    m = diffgrn.Evosax("CMA_ES", population=6, sigma=0.2, std_min=1e-3)
    assert m.name == "evosax:CMA_ES" and m.config()["std_min"] == 1e-3
    assert diffgrn.from_config(m.config()) == m


def test_evosax_validation_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown evosax strategy 'CMAES'.*CMA_ES.*xNES"):
        diffgrn.Evosax("CMAES")
    with pytest.raises(ValueError, match="unknown strategy parameter.*foo.*std_init"):
        diffgrn.Evosax("CMA_ES", foo=1)
    with pytest.raises(ValueError, match="even"):
        diffgrn.Evosax("Open_ES", population=5)
    with pytest.raises(ValueError, match="sampling_fn"):
        diffgrn.Evosax("RandomSearch")
    with pytest.raises(ValueError, match="Evosax.sigma"):
        diffgrn.Evosax("CMA_ES", sigma=0.0)


def test_evosax_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "evosax", None)  # import evosax → ImportError
    monkeypatch.setitem(sys.modules, "evosax.algorithms", None)
    with pytest.raises(ImportError, match=r"pip install 'diffgrn\[evosax\]'"):
        diffgrn.Evosax("CMA_ES")


@pytest.mark.slow  # CI runs it after the README suite (kept under 5 minutes)
def test_cli_compare_with_evosax_and_random(tmp_path, capsys):
    argv = [
        "compare",
        "--methods",
        "evosax:CMA_ES,random",
        "--generations",
        "1",
        "--quick",
        "--t-final",
        "1",
        "--dt",
        "0.05",
        "--replicates",
        "8",
        "--cells",
        "5",
        "--no-progress",
        "--out",
        str(tmp_path / "cmp"),
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "| evosax:CMA_ES |" in out and "| random |" in out
    assert (tmp_path / "cmp" / "evosax:CMA_ES-seed0" / "history.json").is_file()
    with pytest.raises(SystemExit):
        cli_main(["train", "--method", "evosax:Nope", "--quick"])
    assert "unknown evosax strategy 'Nope'" in capsys.readouterr().err
