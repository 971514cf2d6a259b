import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import LinearRegulator

import diffgrn
from diffgrn import diagnostics as dg


class Vector(eqx.Module):
    x: jnp.ndarray


A = jnp.array([1.0, -2.0, 0.5])
QUADRATIC = lambda v, key: -0.5 * jnp.sum((v.x - A) ** 2) + 0.0 * jr.normal(key)


def test_snr_of_known_gaussian():
    mu, s, d, k = jnp.array([3.0, 0.0, 4.0, 0.0, 0.0]), 2.0, 5, 20000
    samples = Vector(mu + s * jr.normal(jr.key(0), (k, d)))
    out = dg.gradient_snr(samples)
    assert float(out["snr"]) == pytest.approx(5.0 / (s * math.sqrt(d)), rel=0.03)
    assert float(out["mean_norm"]) == pytest.approx(5.0, rel=0.02)


def test_cosine_and_norms():
    a, b = Vector(jnp.array([1.0, 0.0])), Vector(jnp.array([1.0, 1.0]))
    assert float(dg.cosine_similarity(a, b)) == pytest.approx(1 / math.sqrt(2))
    assert float(dg.cosine_similarity(a, Vector(jnp.zeros(2)))) == 0.0
    assert float(dg.tree_norm(b)) == pytest.approx(math.sqrt(2))
    assert dg.group_norms(b) == {".x": pytest.approx(math.sqrt(2))}


def test_finite_differences_of_quadratic():
    theta = Vector(jnp.array([0.3, 0.1, -1.0]))
    g = dg.finite_difference_gradient(QUADRATIC, theta, jr.key(0), eps=1e-2)
    assert np.allclose(g.x, A - theta.x, atol=1e-4)


def test_es_gradient_of_quadratic():
    theta = Vector(jnp.array([0.3, 0.1, -1.0]))
    g = dg.es_gradient(QUADRATIC, theta, jr.key(1), sigma=0.1, pairs=20000)
    # Antithetic pairs cancel the curvature exactly; what is left is Monte-Carlo error
    # of (1/P) Σ (∇f·ε) ε, about ‖∇f‖·sqrt((d+1)/P) ≈ 0.03 here.
    assert np.allclose(g.x, A - theta.x, atol=0.06)
    assert float(dg.cosine_similarity(g, Vector(A - theta.x))) > 0.999


def test_lyapunov_exponent_of_linear_system():
    # Ring of 6: W has eigenvalues cos(2πj/6) ∈ [−1, 1]; with f = k(s̄ − ½), k = −1,
    # Euler's tangent map is (I + k·dt·W)^n, whose largest singular value is
    # (1 + dt)^n, so λ = log(1 + dt)/dt ≈ 1 (the alternating mode grows).
    dt = 0.01
    obj = diffgrn.Objective(
        tissue=diffgrn.Chain(6, "periodic"),
        dynamics=diffgrn.Dynamics(t_final=1.0, dt=dt, sigma=0.0),
        replicates=2,
    )
    reg = LinearRegulator(jnp.asarray(-1.0))
    lam = float(dg.lyapunov_exponent(obj, reg, jr.key(0)))
    assert lam == pytest.approx(math.log(1 + dt) / dt, rel=1e-4)
    # k = +1: the uniform mode grows at rate 1 too; k = +0.5 gives 0.5.
    lam_half = float(dg.lyapunov_exponent(obj, LinearRegulator(jnp.asarray(0.5)), jr.key(0)))
    assert lam_half == pytest.approx(math.log(1 + 0.5 * dt) / dt, rel=1e-4)


def test_clip_zeroes_the_tangent_map():
    obj = diffgrn.Objective(
        tissue=diffgrn.Chain(4, "open"),
        dynamics=diffgrn.Dynamics(t_final=1.0, dt=0.05, sigma=0.0),
        replicates=2,
    )
    # Strong positive feedback drives every cell to a bound well before T.
    reg = LinearRegulator(jnp.asarray(20.0))
    assert float(dg.tangent_growth(obj, reg, jr.key(0))) == 0.0
    sat = dg.saturation(obj, reg, jr.key(0))
    assert float(sat["final_at_bound"]) == 1.0 and float(sat["steps_clipped"]) > 0.5


def test_saturation_zero_when_nothing_moves():
    obj = diffgrn.Objective(
        tissue=diffgrn.Chain(5, "pinned", pinned_value=1.0),
        dynamics=diffgrn.Dynamics(t_final=0.5, dt=0.05, sigma=0.0),
        replicates=4,
    )
    sat = dg.saturation(obj, LinearRegulator(jnp.asarray(0.0)), jr.key(0))
    # Pinned cells (at the bound 1.0) are excluded; free cells stay in [0.4, 0.6].
    assert float(sat["final_at_bound"]) == 0.0 and float(sat["steps_clipped"]) == 0.0
    assert float(sat["fates_saturated"]) == 0.0


@pytest.fixture(scope="module")
def smooth_objective():
    # Short horizon, small noise: no clipping, so every stage is differentiable.
    return diffgrn.Objective(
        tissue=diffgrn.Chain(4, "open"),
        dynamics=diffgrn.Dynamics(t_final=0.5, dt=0.05, sigma=0.05),
        readout=diffgrn.SoftReadout(5.0),
        bandwidth=0.3,
        replicates=8,
    )


@pytest.mark.slow  # README suite's time (< 5 min on 2 cores)
def test_stage_gradients_agree_with_direct_gradient(smooth_objective):
    reg = diffgrn.TanhRegulator(1.0, 4.0, 0.45)
    st = dg.stage_gradients(smooth_objective, reg, jr.key(0))
    direct = eqx.filter_grad(lambda r: smooth_objective.soft(r, jr.key(0)).value)(reg)
    assert float(st["params"]) == pytest.approx(float(dg.tree_norm(direct)), rel=1e-5)
    parts = dg.utility_part_gradients(smooth_objective, reg, jr.key(0))
    diff = jax.tree_util.tree_map(
        lambda u, p, r: u - (p - r), parts["value"], parts["s_pat"], parts["s_rep"]
    )
    assert float(dg.tree_norm(diff)) < 1e-5
    assert float(st["params_s_pat"]) == pytest.approx(float(dg.tree_norm(parts["s_pat"])), rel=1e-5)


def test_adjoint_at_last_step_is_sigma_times_state_gradient(smooth_objective):
    reg = diffgrn.TanhRegulator(1.0, 4.0, 0.45)
    adj = dg.adjoint_norms(smooth_objective, reg, jr.key(0))
    st = dg.stage_gradients(smooth_objective, reg, jr.key(0))
    assert adj.shape == (smooth_objective.dynamics.n_steps,)
    assert float(adj[-1]) == pytest.approx(0.05 * float(st["final_state"]), rel=1e-4)


def test_gradient_samples_and_snr_on_objective(smooth_objective):
    reg = diffgrn.TanhRegulator(1.0, 4.0, 0.45)
    samples = dg.gradient_samples(smooth_objective.loss, reg, jr.split(jr.key(0), 4))
    assert samples.a.shape == (4,)
    out = dg.gradient_snr(samples)
    assert np.isfinite(float(out["snr"])) and float(out["noise_norm"]) > 0


def test_stiffness_of_tanh_is_dt_a_b():
    # f = a·tanh(−b(s̄ − c)) has its steepest slope −a·b at s̄ = c (a grid point here).
    reg = diffgrn.TanhRegulator(3.0, 20.0, 0.25)
    assert float(dg.stiffness(reg, 0.01)) == pytest.approx(0.6, rel=1e-5)
    assert float(dg.stiffness(diffgrn.TanhRegulator(0.0, 20.0, 0.5), 0.01)) == 0.0


class _OffDiagonal(diffgrn.AbstractRegulator):
    """f = tanh(20 (s − s̄ − ½)): steep only where a cell differs from its neighbours."""

    def __call__(self, s, sbar):
        return jnp.tanh(20.0 * (s - sbar - 0.5))


def test_stiffness_sees_own_state_off_the_diagonal():
    # On s = s̄ the slope is 20·sech²(10) ≈ 0; at s − s̄ = ½ the row sum is 2·20 = 40.
    value = float(dg.stiffness(_OffDiagonal(), 0.01))
    assert 0.3 < value <= 0.4 + 1e-6, value
