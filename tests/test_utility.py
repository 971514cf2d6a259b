import math
from collections import Counter

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from diffgrn import (
    HardReadout,
    IdentityReadout,
    SoftReadout,
    StraightThroughReadout,
    binary_entropy,
    hard_utility,
    soft_utility,
)


def h2(p):
    return 0.0 if p in (0, 1) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def reference_utility(z):
    """Plain-Python utility from model.md."""
    z = np.asarray(z, int)
    r, n = z.shape
    counts = Counter(map(tuple, z))
    s_rep = -sum(c / r * math.log2(c / r) for c in counts.values()) / n
    s_pat = h2(z.mean())
    return s_pat - s_rep, s_pat, s_rep


def test_all_equal_all_zero_is_zero():
    u = hard_utility(jnp.zeros((100, 7)))
    assert float(u.value) == 0.0 and float(u.s_pat) == 0.0 and float(u.s_rep) == 0.0


def test_single_pattern_three_of_seven():
    z = jnp.tile(jnp.array([1, 0, 1, 0, 1, 0, 0.0]), (100, 1))
    u = hard_utility(z)
    assert float(u.value) == pytest.approx(h2(3 / 7), abs=1e-6)
    assert float(u.value) == pytest.approx(0.985, abs=1e-3)


def test_two_mirror_patterns():
    a = jnp.array([1, 0, 1, 0, 1, 0, 1.0])
    z = jnp.concatenate([jnp.tile(a, (50, 1)), jnp.tile(1 - a, (50, 1))])
    u = hard_utility(z)
    # p̄ = (4·50 + 3·50) / 700 = 1/2, two patterns at 1/2 each.
    assert float(u.value) == pytest.approx(1 - 1 / 7, abs=1e-6)


def test_fair_coins_saturate_at_log_r():
    z = jr.bernoulli(jr.key(0), 0.5, (100, 7)).astype(jnp.float32)
    u = hard_utility(z)
    ref = reference_utility(z)
    assert float(u.value) == pytest.approx(ref[0], abs=1e-5)
    # S_rep ≤ log2(R)/N, so U ≥ S_pat − log2(100)/7 ≈ 0.05; collisions make it larger.
    assert float(u.s_rep) <= math.log2(100) / 7 + 1e-6
    assert 0.04 < float(u.value) < 0.2


@pytest.mark.parametrize("n", [3, 7, 33, 64])
def test_hard_matches_reference_any_width(n):
    key_base, key_pick = jr.split(jr.key(n))
    base = jr.bernoulli(key_base, 0.4, (6, n))
    z = base[jr.randint(key_pick, (50,), 0, 6)].astype(jnp.float32)
    u = jax.jit(hard_utility)(z)
    for got, want in zip(u, reference_utility(z)):
        assert float(got) == pytest.approx(want, abs=1e-5)


def test_invariant_to_replicate_order():
    z = jr.bernoulli(jr.key(1), 0.3, (40, 7)).astype(jnp.float32)
    perm = jr.permutation(jr.key(2), 40)
    assert float(hard_utility(z).value) == float(hard_utility(z[perm]).value)
    p = jr.uniform(jr.key(3), (40, 7))
    assert float(soft_utility(p, 0.1).value) == pytest.approx(
        float(soft_utility(p[perm], 0.1).value), abs=1e-6
    )


@pytest.mark.parametrize("seed", range(5))
def test_s_rep_bounds(seed):
    r, n = 30, 7
    z = jr.bernoulli(jr.key(seed), 0.5, (r, n)).astype(jnp.float32)
    s_rep = float(hard_utility(z).s_rep)
    assert 0.0 <= s_rep <= math.log2(r) / n + 1e-6


def test_soft_tends_to_hard():
    # States well away from the threshold: sharp sigmoid + narrow kernel → hard utility.
    key_pat, key_off, key_pick = jr.split(jr.key(4), 3)
    base = jr.bernoulli(key_pat, 0.5, (4, 7))[jr.randint(key_pick, (60,), 0, 4)]
    s = jnp.where(base, 0.8, 0.2) + 0.1 * jr.uniform(key_off, (60, 7), minval=-1, maxval=1)
    hard = float(hard_utility(HardReadout()(s)).value)
    errors = []
    for tau, h in [(5.0, 0.3), (20.0, 0.1), (200.0, 0.01)]:
        soft = float(soft_utility(SoftReadout(tau)(s), h).value)
        errors.append(abs(soft - hard))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_straight_through_forward_is_hard_and_backward_is_surrogate():
    s = jnp.array([0.1, 0.49, 0.5, 0.51, 0.9])
    for surrogate in (IdentityReadout(), SoftReadout(8.0)):
        ste = StraightThroughReadout(surrogate)
        assert jnp.array_equal(ste(s), HardReadout()(s))
        grad = jax.grad(lambda x: jnp.sum(ste(x)))(s)
        if isinstance(surrogate, IdentityReadout):
            assert jnp.allclose(grad, 1.0)
        else:
            want = jax.grad(lambda x: jnp.sum(SoftReadout(8.0)(x)))(s)
            assert jnp.allclose(grad, want)
    # The hard readout itself passes no gradient.
    assert jnp.all(jax.grad(lambda x: jnp.sum(HardReadout()(x)))(s) == 0)


def test_binary_entropy_edges_have_finite_gradient():
    assert float(binary_entropy(jnp.array(0.5))) == pytest.approx(1.0)
    for p in (0.0, 1.0):
        assert float(binary_entropy(jnp.array(p))) == 0.0
        assert jnp.isfinite(jax.grad(binary_entropy)(jnp.array(p)))


def test_soft_utility_gradient_finite_on_hard_fates():
    # STE fates are exactly 0/1 (even all zero): the gradient must stay finite.
    s = jnp.zeros((10, 7)) + 0.2
    g = jax.grad(lambda x: soft_utility(StraightThroughReadout()(x), 0.05).value)(s)
    assert jnp.all(jnp.isfinite(g))
