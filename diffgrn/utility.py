"""The information-theoretic utility U = S_pat − S_rep, in bits per cell.

`hard_utility` counts distinct patterns exactly (sort based, any number of cells);
`soft_utility` replaces the pattern distribution by a kernel density estimate so that
it is differentiable in the fates.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar


class Utility(NamedTuple):
    """U = S_pat − S_rep and its two parts (bits per cell)."""

    value: Scalar
    s_pat: Scalar
    s_rep: Scalar


def binary_entropy(p: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """H₂(p) in bits, with H₂(0) = H₂(1) = 0 and a zero (not infinite) gradient there."""
    inside = (p > 0) & (p < 1)
    q = jnp.where(inside, p, 0.5)
    h = -(q * jnp.log2(q) + (1 - q) * jnp.log2(1 - q))
    return jnp.where(inside, h, 0.0)


def _pack_rows(bits: Array) -> Array:
    """Pack an `(R, N)` 0/1 array into `(R, ceil(N/32))` uint32 words."""
    r, n = bits.shape
    n_words = -(-n // 32)
    pad = n_words * 32 - n
    b = jnp.pad(bits.astype(jnp.uint32), ((0, 0), (0, pad)))
    b = b.reshape(r, n_words, 32)
    shifts = jnp.arange(32, dtype=jnp.uint32)
    return jnp.sum(b << shifts, axis=-1, dtype=jnp.uint32)


def pattern_entropy(patterns: Float[Array, "replicates cells"]) -> Scalar:
    """Shannon entropy (bits) of the empirical distribution of distinct rows."""
    r = patterns.shape[0]
    words = _pack_rows(patterns >= 0.5)
    order = jnp.lexsort(tuple(words[:, i] for i in reversed(range(words.shape[1]))))
    sorted_words = words[order]
    new = jnp.concatenate([jnp.ones((1,), bool),
                           jnp.any(sorted_words[1:] != sorted_words[:-1], axis=1)])
    group = jnp.cumsum(new) - 1
    counts = jnp.zeros((r,), jnp.float32).at[group].add(1.0)
    freq = counts / r
    safe = jnp.where(counts > 0, freq, 1.0)
    return jnp.sum(jnp.where(counts > 0, -freq * jnp.log2(safe), 0.0))


def hard_utility(fates: Float[Array, "replicates cells"]) -> Utility:
    """Exact utility of binary fates `(R, N)` (values ≥ 0.5 count as 1)."""
    z = (fates >= 0.5).astype(jnp.float32)
    n = z.shape[1]
    s_pat = binary_entropy(jnp.mean(z))
    s_rep = pattern_entropy(z) / n
    return Utility(s_pat - s_rep, s_pat, s_rep)


def soft_utility(fates: Float[Array, "replicates cells"], bandwidth: float) -> Utility:
    """Differentiable utility of fates in [0, 1] by Gaussian-KDE resubstitution.

    q_r = (1/R) Σ_r' exp(−‖p_r − p_r'‖² / 2h²) (r' = r included),
    S_rep = −(1/R) Σ_r log₂ q_r / N, S_pat = H₂(mean fate).
    """
    r, n = fates.shape
    s_pat = binary_entropy(jnp.mean(fates))
    d2 = jnp.sum((fates[:, None, :] - fates[None, :, :]) ** 2, axis=-1)
    log_q = jax.nn.logsumexp(-d2 / (2.0 * bandwidth**2), axis=1) - jnp.log(r)
    s_rep = -jnp.mean(log_q) / jnp.log(2.0) / n
    return Utility(s_pat - s_rep, s_pat, s_rep)
