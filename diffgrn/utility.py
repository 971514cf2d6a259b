"""The information-theoretic utility U = S_pat − S_rep, in bits per cell.

`hard_utility` counts distinct patterns exactly (sort based, any number of cells);
`soft_utility` replaces the pattern distribution by a kernel density estimate so that
it is differentiable in the fates.
"""

import abc
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Scalar

from ._validate import check_instance
from .config import Configurable
from .observe import AbstractObservable, AbstractTrajectoryLoss


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


def _group_rows(bits: Array) -> tuple[Array, Array, Array]:
    """Distinct rows of a 0/1 `(R, N)` array: the sort order, each sorted row's group
    index and the count of each group (zero-padded to R)."""
    words = _pack_rows(bits)
    order = jnp.lexsort(tuple(words[:, i] for i in reversed(range(words.shape[1]))))
    sorted_words = words[order]
    new = jnp.concatenate(
        [jnp.ones((1,), bool), jnp.any(sorted_words[1:] != sorted_words[:-1], axis=1)]
    )
    group = jnp.cumsum(new) - 1
    counts = jnp.zeros((bits.shape[0],), jnp.float32).at[group].add(1.0)
    return order, group, counts


def pattern_entropy(patterns: Float[Array, "replicates cells"]) -> Scalar:
    """Shannon entropy (bits) of the empirical distribution of distinct rows."""
    r = patterns.shape[0]
    _, _, counts = _group_rows(patterns >= 0.5)
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


def dominant_pattern(
    fates: Float[Array, "replicates cells *genes"],
) -> tuple[Float[Array, "cells genes"], Scalar]:
    """The most frequent whole-tissue pattern of binary fates `(R, N)` or `(R, N, m)`
    and its frequency among the R replicates (ties: the lowest packed pattern)."""
    z = _as_fates(fates) >= 0.5
    r, n, m = z.shape
    order, group, counts = _group_rows(z.reshape(r, n * m))
    top = jnp.argmax(counts)
    row = order[jnp.argmax(group == top)]
    return z[row].astype(jnp.float32), counts[top] / r


class AbstractUtility(Configurable):
    """What an `Objective` scores the fates `(R, N, m)` of R replicates with: `hard`
    on thresholded fates, `soft` (differentiable) on fates in [0, 1]. Both return a
    `Utility` (value and two parts); `parts` names the two parts (what `assess`
    reports them as).

    `direction` says which way is better: +1 (a utility, maximised: the default) or
    −1 (a loss, minimised). Every method and `train`'s selection optimise
    `direction × value`, so what `train` monitors and selects by is what its method
    optimises. A utility that reads more than final states says what a solve records
    (`observable`) and scores that record (`hard_of`, `soft_of`)."""

    parts: ClassVar[tuple[str, str]] = ("s_pat", "s_rep")
    direction: ClassVar[int] = 1

    def observable(self) -> AbstractObservable | None:
        """What a solve records for this utility (`None`: the final states)."""
        return None

    def hard_of(self, objective, states) -> Utility:
        """The hard utility of what `objective`'s solve returned (final states
        `(R, N, G)` unless `observable` says otherwise): `hard` of the thresholded
        readout genes."""
        from .readout import HardReadout

        return self.hard(objective.fates(states, HardReadout()))

    def soft_of(self, objective, states) -> Utility:
        """The soft utility of what `objective`'s solve returned."""
        return self.soft(objective.fates(states), objective.bandwidth)

    def check_run(self, objective) -> None:
        """Raise ValueError, naming the field, if this utility cannot score `objective`'s
        runs (checked when the objective is built)."""

    @abc.abstractmethod
    def hard(self, fates: Float[Array, "replicates cells m"]) -> Utility: ...

    @abc.abstractmethod
    def soft(self, fates: Float[Array, "replicates cells m"], bandwidth) -> Utility: ...

    def check(self, n_cells: int, n_readout: int) -> None:
        """Raise ValueError if this utility cannot score `n_cells` × `n_readout` fates."""

    def least_replicates(self) -> tuple[int, str]:
        """The fewest replicates this utility can score, and why (an `Objective` with
        fewer is refused, naming the field)."""
        return 1, ""

    def upper(self, n_fates: int) -> float:
        """The largest value the utility can take (targets are checked against it)."""
        return float(np.log2(n_fates))


class PatternInformation(AbstractUtility):
    """U = S_pat − S_rep (model.md; `hard_utility`, `soft_utility`): fates used evenly,
    the same pattern in every replicate. The default."""

    def hard(self, fates: Float[Array, "replicates cells m"]) -> Utility:
        return hard_utility(fates)

    def soft(self, fates: Float[Array, "replicates cells m"], bandwidth) -> Utility:
        return soft_utility(fates, bandwidth)

    def check(self, n_cells: int, n_readout: int) -> None:
        if n_cells < 2:  # positional information needs two positions: nothing to train
            raise ValueError(
                f"the tissue has {n_cells} cell, but PatternInformation() (U = S_pat − S_rep) "
                "is 0 on one cell whatever the regulator: use at least 2 cells "
                "(Chain.n_cells, a Lattice's rows × cols; not Cell()), or a utility that "
                "scores one cell (TargetPattern, NoUtility)"
            )

    def least_replicates(self) -> tuple[int, str]:
        return 2, "its S_rep (reproducibility over replicates) is 0 for one replicate"


class NoUtility(AbstractUtility):
    """No fate score: for objectives that are judged on their trajectories instead
    (`diffgrn.observe`; a deterministic circuit of one replicate). Both utilities are
    NaN, so nothing selects on them by mistake."""

    def hard(self, fates: Float[Array, "replicates cells m"]) -> Utility:
        nan = jnp.full((), jnp.nan, jnp.float32)
        return Utility(nan, nan, nan)

    def soft(self, fates: Float[Array, "replicates cells m"], bandwidth) -> Utility:
        return self.hard(fates)


class TrajectoryFit(AbstractUtility):
    """A trajectory objective: the `loss` (`diffgrn.observe.TargetTrajectory`, …) of
    what `observe` records, minimised (`direction` −1). Hard and soft are the same
    (a loss needs no thresholding); its `Utility` holds (L, L, NaN), reported as
    `loss`. `train` with it fine-tunes toward a target trajectory, and selects the
    candidate of least L (its start included)."""

    parts: ClassVar[tuple[str, str]] = ("loss", "unused")
    direction: ClassVar[int] = -1
    loss: AbstractTrajectoryLoss
    observe: AbstractObservable

    def __check_init__(self):
        check_instance("TrajectoryFit", "loss", self.loss, AbstractTrajectoryLoss)
        check_instance("TrajectoryFit", "observe", self.observe, AbstractObservable)

    def observable(self) -> AbstractObservable:
        return self.observe

    def hard(self, fates: Float[Array, "replicates cells m"]) -> Utility:
        nan = jnp.full((), jnp.nan, jnp.float32)  # scores recordings, not fates
        return Utility(nan, nan, nan)

    def soft(self, fates: Float[Array, "replicates cells m"], bandwidth) -> Utility:
        return self.hard(fates)

    def hard_of(self, objective, states) -> Utility:
        dyn = objective.dynamics
        value = self.loss(self.observe.recording(states, dyn.n_steps, dyn.dt))
        return Utility(value, value, jnp.full((), jnp.nan, jnp.float32))

    def soft_of(self, objective, states) -> Utility:
        return self.hard_of(objective, states)

    def check_run(self, objective) -> None:
        n = objective.dynamics.n_steps
        self.observe.check(n, objective.n_cells, objective.genes)
        self.observe.check_memory(n, objective.replicates, objective.n_cells, objective.genes)

    def upper(self, n_fates: int) -> float:
        return float("inf")


class AbstractPatternScore(Configurable):
    """How `TargetPattern` scores the per-cell agreements `(R, N, m)` of R replicates
    with its target: `hard` on 0/1 agreements, `soft` (differentiable) on agreements
    p·t + (1 − p)(1 − t) in [0, 1]."""

    @abc.abstractmethod
    def hard(self, agree: Float[Array, "replicates cells m"]) -> Scalar: ...

    @abc.abstractmethod
    def soft(self, agree: Float[Array, "replicates cells m"]) -> Scalar: ...


class Agreement(AbstractPatternScore):
    """The mean per-cell agreement with the pattern, in [0, 1] (0.5 ≈ chance); soft:
    the same mean of the soft agreements. The default."""

    def hard(self, agree: Float[Array, "replicates cells m"]) -> Scalar:
        return jnp.mean(agree)

    def soft(self, agree: Float[Array, "replicates cells m"]) -> Scalar:
        return jnp.mean(agree)


class ExactHits(AbstractPatternScore):
    """The fraction of replicates that make the pattern exactly, in [0, 1]; soft: the
    product over cells of the per-cell agreements, averaged over replicates."""

    def hard(self, agree: Float[Array, "replicates cells m"]) -> Scalar:
        return jnp.mean(jnp.all(agree > 0.5, axis=(1, 2)))

    def soft(self, agree: Float[Array, "replicates cells m"]) -> Scalar:
        return jnp.mean(jnp.prod(agree, axis=(1, 2)))


class TargetPattern(AbstractUtility):
    """Reward for making one chosen pattern, e.g. `TargetPattern("1001001")`.

    `pattern`: a string of 0/1 with one character per cell (one readout gene; cells
    in tissue order, row-major on a lattice) or a nested sequence `(cells, m)` for m
    readout genes. `score`:

    - `Agreement()` (default): the mean per-cell agreement with the pattern, in
      [0, 1] (0.5 ≈ chance). Soft: Σ p·t + (1 − p)(1 − t) averaged.
    - `ExactHits()`: the fraction of replicates that make the pattern exactly, in
      [0, 1]. Soft: the product over cells of the per-cell agreements, averaged.

    Its `Utility` carries (value, mean agreement, fraction of exact hits) in the
    (value, s_pat, s_rep) slots, so histories show both; `assess` reports them as
    `agreement` and `exact_hits`."""

    parts: ClassVar[tuple[str, str]] = ("agreement", "exact_hits")
    pattern: tuple = eqx.field(static=True)
    """The target: 0/1 per cell, e.g. 1001001 (row-major on a lattice; one readout gene)."""
    score: AbstractPatternScore
    """How a replicate's fates are scored against it: per-cell agreement, or exact hits."""

    def __init__(self, pattern: "str | Sequence", score: AbstractPatternScore | None = None):
        if isinstance(pattern, str):
            if not pattern or set(pattern) - {"0", "1"}:
                raise ValueError(
                    f"TargetPattern.pattern must be a string of 0 and 1 (one per cell); "
                    f"got {pattern!r}"
                )
            rows = tuple((int(c),) for c in pattern)
        else:
            arr = np.asarray(pattern)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or arr.size == 0 or not np.isin(arr, (0, 1)).all():
                raise ValueError(
                    "TargetPattern.pattern must be 0/1 values, one per cell (or "
                    f"(cells, readout genes)); got {pattern!r}"[:300]
                )
            rows = tuple(tuple(int(v) for v in row) for row in arr)
        score = Agreement() if score is None else score
        check_instance("TargetPattern", "score", score, AbstractPatternScore)
        self.pattern = rows
        self.score = score

    @property
    def target(self) -> Float[Array, "cells m"]:
        return jnp.asarray(self.pattern, jnp.float32)

    def check(self, n_cells: int, n_readout: int) -> None:
        shape = (len(self.pattern), len(self.pattern[0]))
        if shape != (n_cells, n_readout):
            raise ValueError(
                f"TargetPattern.pattern has {shape[0]} cells × {shape[1]} readout genes but "
                f"the objective has {n_cells} cells × {n_readout} readout genes"
            )

    def upper(self, n_fates: int) -> float:
        return 1.0

    def hard(self, fates: Float[Array, "replicates cells m"]) -> Utility:
        z = (_as_fates(fates) >= 0.5).astype(jnp.float32)
        agree = 1.0 - jnp.abs(z - self.target)
        return Utility(self.score.hard(agree), jnp.mean(agree), ExactHits().hard(agree))

    def soft(self, fates: Float[Array, "replicates cells m"], bandwidth) -> Utility:
        del bandwidth
        p = _as_fates(fates)
        t = self.target
        agree = p * t + (1 - p) * (1 - t)
        return Utility(self.score.soft(agree), jnp.mean(agree), ExactHits().soft(agree))

    def arguments(self) -> dict:
        text = "".join(str(r[0]) for r in self.pattern) if len(self.pattern[0]) == 1 else None
        return dict(
            pattern=text if text is not None else [list(r) for r in self.pattern],
            score=self.score,
        )
