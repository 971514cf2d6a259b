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
    new = jnp.concatenate(
        [jnp.ones((1,), bool), jnp.any(sorted_words[1:] != sorted_words[:-1], axis=1)]
    )
    group = jnp.cumsum(new) - 1
    counts = jnp.zeros((r,), jnp.float32).at[group].add(1.0)
    freq = counts / r
    safe = jnp.where(counts > 0, freq, 1.0)
    return jnp.sum(jnp.where(counts > 0, -freq * jnp.log2(safe), 0.0))


def _as_fates(fates: Array) -> Array:
    """`(R, N)` (one readout gene) or `(R, N, m)` → `(R, N, m)`."""
    if fates.ndim == 2:
        return fates[..., None]
    if fates.ndim != 3:
        raise ValueError(
            f"fates must be (replicates, cells) or (replicates, cells, "
            f"readout genes); got shape {fates.shape}"
        )
    return fates


def entropy(p: Float[Array, "*batch K"]) -> Float[Array, "*batch"]:
    """Shannon entropy (bits) of distributions on the last axis, 0·log 0 = 0 with a
    zero (not infinite) gradient there."""
    inside = p > 0
    q = jnp.where(inside, p, 1.0)
    return -jnp.sum(jnp.where(inside, q * jnp.log2(q), 0.0), axis=-1)


def fate_probabilities(p: Float[Array, "*batch m"]) -> Float[Array, "*batch K"]:
    """Probabilities of the K = 2^m fates of m independent readout genes, each gene
    j in fate 1 with probability `p[..., j]`; fate k has gene j's bit (k >> j) & 1."""
    m = p.shape[-1]
    bits = (jnp.arange(2**m)[:, None] >> jnp.arange(m)[None, :]) & 1  # (K, m)
    return jnp.prod(jnp.where(bits == 1, p[..., None, :], 1 - p[..., None, :]), axis=-1)


def _pattern_entropy_of_fates(p: Float[Array, "replicates cells m"]) -> Scalar:
    """S_pat: entropy (bits) of the fate distribution pooled over cells and
    replicates (for one readout gene, H₂ of the mean fate)."""
    if p.shape[-1] == 1:
        return binary_entropy(jnp.mean(p))
    return entropy(jnp.mean(fate_probabilities(p), axis=(0, 1)))


def hard_utility(fates: Float[Array, "replicates cells *genes"]) -> Utility:
    """Exact utility of binary fates `(R, N)` or `(R, N, m)` with m readout genes
    (values ≥ 0.5 count as 1): S_pat is the entropy of the pooled distribution of the
    K = 2^m fates, S_rep the entropy of whole-tissue patterns divided by N, so
    U ≤ log₂ K bits per cell."""
    z = (_as_fates(fates) >= 0.5).astype(jnp.float32)
    r, n, m = z.shape
    s_pat = _pattern_entropy_of_fates(z)
    s_rep = pattern_entropy(z.reshape(r, n * m)) / n
    return Utility(s_pat - s_rep, s_pat, s_rep)


def soft_utility(
    fates: Float[Array, "replicates cells *genes"], bandwidth: float | Scalar
) -> Utility:
    """Differentiable utility of fates in [0, 1] (`(R, N)` or `(R, N, m)`) by
    Gaussian-KDE resubstitution.

    q_r = (1/R) Σ_r' exp(−‖p_r − p_r'‖² / 2h²) (r' = r included; ‖·‖ over all cells
    and readout genes), S_rep = −(1/R) Σ_r log₂ q_r / N, S_pat = the entropy of the
    pooled fate distribution (H₂(mean fate) for one readout gene).
    """
    p = _as_fates(fates)
    r, n, m = p.shape
    s_pat = _pattern_entropy_of_fates(p)
    flat = p.reshape(r, n * m)
    if r * r * n * m <= 2**24:
        d2 = jnp.sum((flat[:, None, :] - flat[None, :, :]) ** 2, axis=-1)
    else:  # large tissues: one row of distances at a time, O(R·N·m) memory
        d2 = jax.lax.map(lambda x: jnp.sum((flat - x) ** 2, axis=-1), flat)
    log_q = jax.nn.logsumexp(-d2 / (2.0 * bandwidth**2), axis=1) - jnp.log(r)
    s_rep = -jnp.mean(log_q) / jnp.log(2.0) / n
    return Utility(s_pat - s_rep, s_pat, s_rep)
