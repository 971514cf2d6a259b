"""Tissues as neighbour tables (chain, square and hex lattices, graphs), several genes
per cell, regulators that see the cell itself, several readout genes."""

import importlib.util
import json
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import ConstantRegulator

import diffgrn


def stencil_mean(s, rows, cols):
    """Square periodic lattice: the mean of the four rolled copies."""
    g = s.reshape(rows, cols, -1)
    total = sum(jnp.roll(g, shift, axis) for shift in (1, -1) for axis in (0, 1))
    return (total / 4).reshape(rows * cols, -1)


def test_square_periodic_lattice_is_the_four_roll_stencil():
    lat = diffgrn.Lattice(5, 7, "square", "periodic")
    s = jr.uniform(jr.key(0), (35, 2))
    assert lat.neighbours.shape == (35, 4)
    assert np.allclose(lat.neighbour_mean(s), stencil_mean(s, 5, 7), atol=1e-6)


def test_square_open_lattice_border_cells_average_what_they_have():
    lat = diffgrn.Lattice(3, 4, "square", "open")
    s = jnp.arange(12.0)[:, None]
    got = np.asarray(lat.neighbour_mean(s))[:, 0]
    assert got[0] == pytest.approx((1 + 4) / 2)  # corner: right, below
    assert got[1] == pytest.approx((0 + 2 + 5) / 3)  # top edge
    assert got[5] == pytest.approx((1 + 9 + 4 + 6) / 4)  # interior


def test_pinned_lattice_holds_its_border():
    lat = diffgrn.Lattice(4, 5, "hex", "pinned", pinned_value=0.2)
    pinned = np.asarray(lat.pinned).reshape(4, 5)
    assert pinned[0].all() and pinned[-1].all() and pinned[:, 0].all()
    assert not pinned[1:-1, 1:-1].any()
    s = lat.pin(jnp.full((20, 1), 0.9))
    assert float(s[0, 0]) == pytest.approx(0.2) and float(s[6, 0]) == pytest.approx(0.9)
    # An interior cell next to the border counts the pinned cells at their value.
    assert 0.2 < float(lat.neighbour_mean(s)[6, 0]) < 0.9


@pytest.mark.parametrize("boundary", ["open", "periodic"])
def test_hex_lattice_is_symmetric_with_six_neighbours(boundary):
    lat = diffgrn.Lattice(6, 6, "hex", boundary)
    pairs = {tuple(p) for p in lat.neighbour_pairs().tolist()}
    assert all((j, i) in pairs for i, j in pairs)  # i senses j iff j senses i
    degree = np.bincount(lat.neighbour_pairs()[:, 0], minlength=36)
    if boundary == "periodic":
        assert (degree == 6).all()
    else:
        assert degree.max() == 6 and degree.min() == 2  # a corner of the sheet
    # Odd-r offset: row 1 is shifted right, so cell (1, 1) touches (0, 1) and (0, 2)
    # above it, not (0, 0).
    assert (7, 1) in pairs and (7, 2) in pairs and (7, 0) not in pairs


def test_graph_pinned_mask_and_objective_conversions():
    mask = diffgrn.Graph(3, [(0, 1), (1, 2)], pinned=[True, False, False])
    listed = diffgrn.Graph(3, [(0, 1), (1, 2)], pinned=[0])
    assert np.array_equal(mask.pinned, listed.pinned)
    obj = diffgrn.Objective(genes=2.0, fate_genes=(0, 1), devices=[jax.devices()[0]])
    assert obj.genes == 2 and isinstance(obj.genes, int)
    assert obj.devices == (jax.devices()[0],)


def test_graph_hub_uses_the_wide_table_path():
    star = diffgrn.Graph(40, [(0, i) for i in range(1, 40)])
    assert star.neighbours.shape == (40, 39)
    s = jr.uniform(jr.key(0), (2, 40, 1))
    got = star.neighbour_mean(s)
    assert np.allclose(got[:, 0, 0], s[:, 1:, 0].mean(axis=1), atol=1e-6)
    assert np.allclose(got[:, 1:, 0], s[:, :1, 0], atol=1e-6)  # leaves sense the hub


def test_graph_of_a_path_is_the_open_chain():
    graph = diffgrn.Graph(6, [(i, i + 1) for i in range(5)])
    chain = diffgrn.Chain(6, "open")
    s = jr.uniform(jr.key(1), (3, 6, 1))
    assert np.allclose(graph.neighbour_mean(s), chain.neighbour_mean(s))


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: diffgrn.Lattice(0, 5), "Lattice.rows"),
        (lambda: diffgrn.Lattice(4, 4, "triangle"), "Lattice.geometry"),
        (lambda: diffgrn.Lattice(5, 4, "hex", "periodic"), "Lattice.rows"),
        (lambda: diffgrn.Graph(3, [(0, 1), (1, 3)]), "Graph.edges"),
        (lambda: diffgrn.Graph(3, [(0, 0)]), "Graph.edges"),
        (lambda: diffgrn.Graph(3, [(0, 1)], pinned=[5]), "Graph.pinned"),
        (lambda: diffgrn.Graph(3, [(0, 1, 2)]), "Graph.edges"),
        (lambda: diffgrn.Graph(3, [(0, 1)], pinned=[True, False]), "Graph.pinned"),
        (lambda: diffgrn.Lattice(1, 5, "square", "periodic"), "Lattice.rows"),
        (lambda: diffgrn.Objective(genes="two"), "Objective.genes"),
        (lambda: diffgrn.Objective(devices=["cpu"]), "Objective.devices"),
        (lambda: diffgrn.Objective(genes=2, fate_genes=(2,)), "Objective.fate_genes"),
        (lambda: diffgrn.Objective(genes=2, fate_genes=(1, 1)), "Objective.fate_genes"),
        (
            lambda: diffgrn.Objective(genes=2, dynamics=diffgrn.Dynamics(sigma=(0.1,))),
            "Dynamics.sigma",
        ),
        (lambda: diffgrn.Objective(tissue="chain"), "Objective.tissue"),
        (lambda: diffgrn.Objective(tissue=diffgrn.Chain(1)), "Chain.n_cells"),  # U ≡ 0
        (lambda: diffgrn.Objective(tissue=diffgrn.Cell()), "Chain.n_cells"),
        (lambda: diffgrn.MLPRegulator(key=jr.key(0), inputs="self"), "MLPRegulator.inputs"),
    ],
)
def test_bad_tissue_and_gene_settings_name_the_field(make, field, without_type_checks):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_regulator_with_other_genes_is_refused():
    obj = diffgrn.Objective(genes=2, fate_genes=(0, 1), replicates=4)
    with pytest.raises(ValueError, match="Objective.genes"):
        obj.simulate(diffgrn.MLPRegulator(key=jr.key(0)), jr.key(0))


@pytest.mark.parametrize(
    "tissue",
    [
        diffgrn.Chain(5, "pinned"),
        diffgrn.Lattice(4, 6, "hex", "periodic"),
        diffgrn.Lattice(3, 3, "square", "pinned", pinned_value=0.5),
        diffgrn.Graph(5, [(0, 1), (1, 2), (2, 0), (3, 4)], pinned=[4]),
    ],
)
def test_every_tissue_round_trips_through_its_config(tissue):
    obj = diffgrn.Objective(
        tissue=tissue, genes=2, fate_genes=(1,), dynamics=diffgrn.Dynamics(sigma=(0.1, 0.2))
    )
    back = diffgrn.Objective.from_config(json.loads(json.dumps(obj.config())))
    assert type(back.tissue) is type(tissue)
    for name in ("neighbours", "weights", "pinned"):
        assert np.array_equal(getattr(back.tissue, name), getattr(tissue, name))
    assert back.config() == obj.config()


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_two_genes_with_own_state_and_noise_per_gene():
    obj = diffgrn.Objective(
        tissue=diffgrn.Lattice(4, 3, "hex", "periodic"),
        dynamics=diffgrn.Dynamics(t_final=0.2, dt=0.05, sigma=(0.0, 0.3)),
        replicates=6,
        genes=2,
        fate_genes=(0, 1),
    )
    flat = ConstantRegulator(jnp.asarray(0.0), genes=2)
    s = eqx.filter_jit(obj.simulate)(flat, jr.key(0))
    s0, _ = obj.draw(jr.key(0))
    assert s.shape == (6, 12, 2)
    assert jnp.array_equal(s[..., 0], s0[..., 0])  # σ = 0 and f = 0: gene 0 still
    assert not jnp.allclose(s[..., 1], s0[..., 1])  # gene 1 diffuses
    mlp = diffgrn.MLPRegulator(key=jr.key(1), genes=2, inputs="both")
    assert mlp.mlp.layers[0].weight.shape == (8, 4)
    hard, soft = eqx.filter_jit(obj.evaluate)(mlp, jr.key(2))
    assert 0.0 <= float(hard.value) <= 2.0 and math.isfinite(float(soft.value))
    g = eqx.filter_grad(lambda r: obj.soft(r, jr.key(3)).value)(mlp)
    assert float(diffgrn.diagnostics.tree_norm(g)) > 0


def test_transcriptional_regulator_is_the_gene_circuit():
    reg = diffgrn.TranscriptionalRegulator(3, key=jr.key(0))
    reg = eqx.tree_at(lambda r: r.log_k, reg, jnp.log(jnp.array([0.5, 1.0, 2.0])))
    s, sbar = jr.uniform(jr.key(1), (4, 3)), jr.uniform(jr.key(2), (4, 3))
    want = 1 / (1 + jnp.exp(-(s @ reg.W.T + sbar @ reg.V.T + reg.b))) - reg.k * s
    assert np.allclose(reg(s, sbar), want, atol=1e-6)
    assert diffgrn.count_parameters(reg) == 9 + 9 + 3 + 3


def test_utilities_with_several_readout_genes():
    # Each cell has one of 4 fates, used evenly, the same pattern in every replicate.
    codes = jnp.array([0, 1, 2, 3] * 2)
    fates = jnp.stack([(codes >> j) & 1 for j in range(2)], -1).astype(jnp.float32)
    fates = jnp.broadcast_to(fates, (10, 8, 2))
    u = diffgrn.hard_utility(fates)
    assert float(u.s_pat) == pytest.approx(2.0) and float(u.s_rep) == pytest.approx(0.0)
    assert float(diffgrn.soft_utility(fates, 0.3).value) == pytest.approx(2.0, abs=1e-5)
    # Random fates: U ≤ log2 K, and one readout gene gives the (R, N) utility.
    z = (jr.uniform(jr.key(0), (50, 9, 3)) > 0.3).astype(jnp.float32)
    assert float(diffgrn.hard_utility(z).value) <= 3.0
    one = diffgrn.hard_utility(z[..., :1])
    assert float(one.value) == float(diffgrn.hard_utility(z[..., 0]).value)
    p = jr.uniform(jr.key(1), (20, 6))
    assert float(diffgrn.soft_utility(p[..., None], 0.5).value) == float(
        diffgrn.soft_utility(p, 0.5).value
    )


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_counter_brownian_path_is_exact_reproducible_and_differentiable():
    obj = diffgrn.Objective(
        dynamics=diffgrn.Dynamics(t_final=1.0, dt=0.01, noise=diffgrn.CounterNoise()), replicates=8
    )
    s0, path = obj.draw(jr.key(0))
    inc = jnp.stack([path.evaluate(k * 0.01, (k + 1) * 0.01) for k in range(100)])
    assert inc.shape == (100, 8, 7, 1)
    assert abs(float(inc.mean())) < 0.003 and float(inc.var()) == pytest.approx(0.01, rel=0.1)
    assert jnp.array_equal(path.evaluate(0.3, 0.31), inc[30])
    reg = diffgrn.TanhRegulator(1.0, 6.0, 0.4)
    a = eqx.filter_jit(obj.simulate)(reg, jr.key(3))
    assert jnp.array_equal(a, eqx.filter_jit(obj.simulate)(reg, jr.key(3)))
    g = eqx.filter_grad(lambda r: obj.soft(r, jr.key(3)).value)(reg)
    assert math.isfinite(float(diffgrn.diagnostics.tree_norm(g)))


def test_a_solve_too_large_for_memory_is_refused_before_compute():
    grid = diffgrn.Dynamics(t_final=1e7, dt=0.01, noise=diffgrn.GridNoise())
    with pytest.raises(ValueError, match=r"GiB.*GridNoise stores steps.*CounterNoise\(\)"):
        diffgrn.Objective(dynamics=grid).hard(diffgrn.TanhRegulator(), jr.key(0))
    # The default noise holds one block of increments (`CounterNoise.block` steps).
    huge = diffgrn.Objective(tissue=diffgrn.Chain(1000), replicates=10**7)
    with pytest.raises(ValueError, match="GiB.*lower its block; lower replicates or cells"):
        huge.hard(diffgrn.MLPRegulator(key=jr.key(0)), jr.key(0))


@pytest.mark.parametrize("block", [7, 1000])  # blocks with a remainder; one piece
def test_counter_noise_drawn_in_blocks_is_the_same_noise(block):
    """Blocked draws are the per-step draws, vectorised: the same solve whatever the
    block (up to float rounding), with saved trajectories and truncated backprop."""
    dyn = diffgrn.Dynamics(t_final=2.5, dt=0.01, noise=diffgrn.CounterNoise(block=block))
    obj = diffgrn.Objective(dynamics=dyn, replicates=4)
    reg = diffgrn.TanhRegulator(1.0, 6.0, 0.4)
    s0, path = obj.draw(jr.key(2))
    # The unblocked solve: every step's increment from the path, stored.
    grid = diffgrn.brownian.GridBrownianPath(
        0.0, 2.5, 0.01, jax.vmap(path.increment)(jnp.arange(250))
    )
    solve = lambda p, **kw: dyn.solve(reg, obj.tissue, s0, p, **kw)
    for kw in ({}, {"save_every": 10}, {"backprop_steps": 30}):
        assert jnp.allclose(solve(path, **kw), solve(grid, **kw), atol=1e-5), kw
    if block < 250:  # states keep only the block's increments
        assert dyn.noise.stored_bytes(16, 250) == 16 * block


def load_example(name):
    path = Path(__file__).parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notch_delta_example_makes_lateral_inhibition():
    nd = load_example("notch_delta")
    clean = nd.run(rows=6, cols=6, replicates=2)
    assert np.allclose(clean["fraction"], 1 / 3) and not clean["touching"].any()
    noisy = nd.run(rows=6, cols=6, replicates=2, sigma=0.01, init=(0.4, 0.6), seed=1)
    assert ((noisy["fraction"] >= 0.25) & (noisy["fraction"] <= 1 / 3 + 1e-9)).all()
    assert not noisy["touching"].any()
