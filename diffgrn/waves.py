"""Tissues over time: synchrony and travelling waves of cells that oscillate.

Each behaviour reads a `Recording` `(replicates, times, cells, genes)` of a tissue
(`Trajectory` over the last part of a run, every cell) and estimates, per cell, the
phase of one gene at the tissue's common frequency:

- **Phases** (`PeakPhase`, replaceable through `AbstractPhase`): the signal minus its
  mean, Hann-windowed, real FFT; the common frequency is the peak (DC excluded) of
  the power summed over the cells, and a cell's phasor is its FFT at that bin. No
  Hilbert transform: one FFT per cell, O(cells · times · log times), and the phase
  difference of two cells at one bin is their lag whatever the bin's offset from
  the true frequency (the window keeps the leakage of the negative frequency small).
  A cell whose amplitude (from the energy within 2 bins of the peak, in state
  units: A for A cos ωt) is below `floor` is *quiet*: its phasor is 0, so it is in
  phase with nothing.
- `Synchrony()`: the Kuramoto order parameter R = |mean_c e^{iφ_c}| over the cells
  (quiet cells count as 0): 1 when every cell oscillates in phase, about 1/√cells
  for random phases, 0 for a quiet tissue.
- `PhaseLag(pairs)`: over neighbour pairs (i, j), the mean lag φ_i − φ_j (radians,
  in (−π, π]; > 0: j peaks later, the wave runs from i to j) and its coherence
  |mean e^{i(φ_i − φ_j)}| ∈ [0, 1]. A travelling wave is a coherent nonzero lag; a
  synchronous tissue a coherent zero lag. Pairs: `pairs_along(tissue)` (a chain's
  consecutive cells, a lattice's rows); O(pairs), never all pairs of cells.
- `Waves(pairs)`: (synchrony, lag, coherence, amplitude, frequency, active) from one
  phase estimate (a goal space for tissues); `WaveKind` sorts its rows into
  synchronous / travelling wave / alternating / incoherent / none.
"""

import abc
import math
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from ._validate import check_instance, check_range
from .config import Configurable
from .observe import AbstractBehaviour, Recording
from .tissue import Chain, Lattice, Tissue


class Phases(NamedTuple):
    """One phase estimate per replicate: unit phasors `z` (0 for quiet cells), each
    cell's amplitude at the peak, and the peak's frequency (cycles per time unit)."""

    z: Complex[Array, "replicates cells"]
    amplitude: Float[Array, "replicates cells"]
    frequency: Float[Array, " replicates"]


class AbstractPhase(Configurable):
    """How each cell's phase at the tissue's common frequency is estimated."""

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "replicates times cells"], dt: float) -> Phases: ...


class PeakPhase(AbstractPhase):
    """The phase at the peak of the cells' summed power spectrum (see the module
    docstring); cells with amplitude below `floor` are quiet."""

    floor: float = eqx.field(static=True, default=0.02)

    def __check_init__(self):
        check_range("PeakPhase", "floor", self.floor, ge=0.0)

    def __call__(self, x, dt):
        n = x.shape[1]
        window = jnp.asarray(np.hanning(n), x.dtype)[None, :, None]
        f = jnp.fft.rfft((x - jnp.mean(x, axis=1, keepdims=True)) * window, axis=1)
        power = jnp.sum(jnp.abs(f[:, 1:]) ** 2, axis=-1)  # (R, bins - 1), DC excluded
        k = 1 + jnp.argmax(power, axis=-1)  # (R,)
        fk = jnp.take_along_axis(f, k[:, None, None], axis=1)[:, 0]  # (R, cells)
        # Amplitude from the energy of the window's main lobe (the peak ± 2 bins), so
        # a frequency between two bins is not read up to 15 % low (Hann scalloping).
        j = k[:, None] + jnp.arange(-2, 3)[None]  # (R, 5)
        inside = (j >= 1) & (j < f.shape[1])
        lobe = jnp.take_along_axis(f, jnp.clip(j, 0, f.shape[1] - 1)[:, :, None], axis=1)
        energy = jnp.sum(jnp.where(inside[:, :, None], jnp.abs(lobe) ** 2, 0.0), axis=1)
        amplitude = 2 * jnp.sqrt(energy / (n * float(np.sum(np.hanning(n) ** 2))))
        quiet = ~(amplitude >= self.floor) | ~jnp.isfinite(amplitude)
        z = jnp.where(quiet, 0.0, fk / jnp.where(quiet, 1.0, jnp.abs(fk)))
        return Phases(z, amplitude, k / (n * dt))


def _as_pairs(x):
    if x is None:
        return None
    try:
        return tuple((int(i), int(j)) for i, j in np.asarray(x).reshape(-1, 2).tolist())
    except (TypeError, ValueError):
        return x  # validation names the field


def pairs_along(tissue: Tissue) -> tuple[tuple[int, int], ...]:
    """Neighbour pairs (i, j) along which a wave's lag is read: a chain's consecutive
    cells (and (n − 1, 0) on a ring), a lattice's row neighbours (c, c + 1, wrapping
    on a periodic sheet), any other tissue's neighbour pairs with i < j."""
    check_instance("pairs_along", "tissue", tissue, Tissue)
    n = tissue.n_cells
    if isinstance(tissue, Chain):
        stop = n if tissue.boundary == "periodic" else n - 1
        return tuple((i, (i + 1) % n) for i in range(stop))
    if isinstance(tissue, Lattice):
        wrap = tissue.boundary == "periodic"
        out = []
        for r in range(tissue.rows):
            for c in range(tissue.cols if wrap else tissue.cols - 1):
                out.append((r * tissue.cols + c, r * tissue.cols + (c + 1) % tissue.cols))
        return tuple(out)
    p = tissue.neighbour_pairs()
    return tuple(map(tuple, np.unique(np.sort(p[p[:, 0] != p[:, 1]], axis=1), axis=0).tolist()))


class _TissueBehaviour(AbstractBehaviour):
    """Shared: the gene read, the phase estimate, the recording checks."""

    def _phases(self, recording: Recording) -> Phases:
        self._check_recording(recording)
        return self.phase(recording.states[..., self.gene], recording.dt)

    def _check_recording(self, recording: Recording) -> None:
        states = recording.states
        if states.ndim != 4:
            raise ValueError(
                f"{type(self).__name__}: expected a recording (replicates, times, cells, "
                f"genes); got shape {states.shape}"
            )
        if not 0 <= self.gene < states.shape[-1]:
            raise ValueError(
                f"{type(self).__name__}.gene = {self.gene} but the recording has "
                f"{states.shape[-1]} genes: expected 0 to {states.shape[-1] - 1}"
            )
        if states.shape[1] < 4:
            raise ValueError(
                f"{type(self).__name__}: a phase needs at least 4 recorded times; got "
                f"{states.shape[1]} (record a longer window: Trajectory.start, .every)"
            )

    def _check_common(self):
        check_range(type(self).__name__, "gene", self.gene, ge=0, integer=True)
        check_instance(type(self).__name__, "phase", self.phase, AbstractPhase)


class Synchrony(_TissueBehaviour):
    """The Kuramoto order parameter of gene `gene`'s phases over the cells, averaged
    over replicates (see the module docstring)."""

    gene: int = eqx.field(static=True, default=0)
    phase: AbstractPhase = eqx.field(default_factory=PeakPhase)

    def __check_init__(self):
        self._check_common()

    def size(self, samples):
        return 1

    def names(self, samples):
        return ("synchrony",)

    def bounds(self, recording_dt, samples):
        return [(0.0, 1.0)]

    def __call__(self, recording: Recording) -> Float[Array, " 1"]:
        return jnp.mean(order(self._phases(recording).z), axis=0)[None]


def order(z: Complex[Array, "*batch cells"]) -> Float[Array, "*batch"]:
    """|mean over cells of z|: the Kuramoto order parameter of unit phasors."""
    return jnp.abs(jnp.mean(z, axis=-1))


def lags(
    z: Complex[Array, "*batch cells"], pairs: Int[Array, "pairs 2"]
) -> tuple[Float[Array, "*batch"], Float[Array, "*batch"]]:
    """(mean lag φ_i − φ_j, coherence) over `pairs`; (0, 0) where a pair is quiet."""
    c = z[..., pairs[:, 0]] * jnp.conj(z[..., pairs[:, 1]])  # e^{i(φ_i − φ_j)}
    m = jnp.mean(c, axis=-1)
    return jnp.angle(m), jnp.abs(m)


class _PairBehaviour(_TissueBehaviour):
    def _check_pairs(self):
        name = type(self).__name__
        if self.pairs is not None and (
            not isinstance(self.pairs, tuple)
            or not self.pairs
            or not all(isinstance(p, tuple) and len(p) == 2 for p in self.pairs)
        ):
            raise ValueError(
                f"{name}.pairs must be None (consecutive cells) or (i, j) cell pairs, "
                f"e.g. pairs_along(tissue); got {self.pairs!r}"[:300]
            )
        for i, j in self.pairs or ():
            check_range(name, "pairs", i, ge=0, integer=True)
            check_range(name, "pairs", j, ge=0, integer=True)
            if i == j:
                raise ValueError(f"{name}.pairs must join two cells; got ({i}, {j})")

    def _pairs(self, cells: int) -> Int[Array, "pairs 2"]:
        name = type(self).__name__
        if self.pairs is None:
            if cells < 2:
                raise ValueError(f"{name}: a phase lag needs at least 2 cells; got {cells}")
            return jnp.stack([jnp.arange(cells - 1), jnp.arange(1, cells)], 1)
        top = max(max(p) for p in self.pairs)
        if top >= cells:
            raise ValueError(
                f"{name}.pairs names cell {top} but the recording has {cells} cells: "
                f"expected indices 0 to {cells - 1}"
            )
        return jnp.asarray(self.pairs, jnp.int32)


class PhaseLag(_PairBehaviour):
    """(lag, coherence) of gene `gene` over the neighbour `pairs` (default: cells
    (0, 1), (1, 2), … of the recording; `pairs_along(tissue)` for a ring or a
    lattice), averaged over replicates (see the module docstring)."""

    pairs: tuple | None = eqx.field(static=True, default=None, converter=_as_pairs)
    gene: int = eqx.field(static=True, default=0)
    phase: AbstractPhase = eqx.field(default_factory=PeakPhase)

    def __check_init__(self):
        self._check_common()
        self._check_pairs()

    def size(self, samples):
        return 2

    def names(self, samples):
        return ("lag", "coherence")

    def bounds(self, recording_dt, samples):
        return [(-math.pi, math.pi), (0.0, 1.0)]

    def __call__(self, recording: Recording) -> Float[Array, " 2"]:
        self._check_recording(recording)
        pairs = self._pairs(recording.states.shape[2])
        ph = self._phases(recording)
        lag, coh = lags(ph.z, pairs)
        return jnp.mean(jnp.stack([lag, coh], -1), axis=0)


WAVE_NAMES = ("synchrony", "lag", "coherence", "amplitude", "frequency", "active")


class Waves(_PairBehaviour):
    """(synchrony, lag, coherence, amplitude, frequency, active) of gene `gene`, from
    one phase estimate, averaged over replicates: `Synchrony`, `PhaseLag` over
    `pairs`, the mean amplitude of the active cells (state units, at the peak), the
    peak's frequency (cycles per time unit; 0 when every cell is quiet) and the
    fraction of cells that are not quiet."""

    pairs: tuple | None = eqx.field(static=True, default=None, converter=_as_pairs)
    gene: int = eqx.field(static=True, default=0)
    phase: AbstractPhase = eqx.field(default_factory=PeakPhase)

    def __check_init__(self):
        self._check_common()
        self._check_pairs()

    def size(self, samples):
        return len(WAVE_NAMES)

    def names(self, samples):
        return WAVE_NAMES

    def bounds(self, recording_dt, samples):
        return [
            (0.0, 1.0),
            (-math.pi, math.pi),
            (0.0, 1.0),
            (0.0, 1.0),
            (0.0, 1.0 / (2.0 * recording_dt)),
            (0.0, 1.0),
        ]

    def __call__(self, recording: Recording) -> Float[Array, " 6"]:
        self._check_recording(recording)
        pairs = self._pairs(recording.states.shape[2])
        ph = self._phases(recording)
        lag, coh = lags(ph.z, pairs)
        on = jnp.abs(ph.z) > 0
        n_on = jnp.sum(on, axis=-1)
        amp = jnp.sum(jnp.where(on, ph.amplitude, 0.0), -1) / jnp.maximum(n_on, 1)
        freq = jnp.where(n_on > 0, ph.frequency, 0.0)
        active = n_on / on.shape[-1]
        out = jnp.stack([order(ph.z), lag, coh, amp, freq, active], -1)
        return jnp.mean(out, axis=0)


KINDS = ("synchronous", "travelling wave", "alternating", "incoherent", "none")


class WaveKind(Configurable):
    """Sorts `Waves` rows: *none* (no tissue-wide oscillation) when fewer than
    `active` of the cells oscillate; else, when the lag is coherent (≥ `coherence`),
    a *travelling wave* for `lag` ≤ |lag| ≤ π − `lag` radians, *alternating* for
    |lag| > π − `lag` (neighbours in anti-phase: a standing pattern, no direction),
    and *synchronous* when |lag| < `lag` and synchrony ≥ `synchrony`; *incoherent*
    otherwise (oscillating cells without a common phase pattern). Non-finite rows
    are none."""

    synchrony: float = eqx.field(static=True, default=0.9)
    coherence: float = eqx.field(static=True, default=0.9)
    lag: float = eqx.field(static=True, default=0.1)
    active: float = eqx.field(static=True, default=0.9)

    def __check_init__(self):
        for f in ("synchrony", "coherence", "active"):
            check_range("WaveKind", f, getattr(self, f), gt=0.0, le=1.0)
        check_range("WaveKind", "lag", self.lag, gt=0.0, lt=math.pi / 2)

    def __call__(self, rows: Float[np.ndarray, "n 6"]) -> np.ndarray:
        """The index into `KINDS` of each row."""
        rows = np.asarray(rows, float)
        if rows.ndim != 2 or rows.shape[1] != len(WAVE_NAMES):
            raise ValueError(
                f"WaveKind: expected Waves rows of shape (n, {len(WAVE_NAMES)}) "
                f"{WAVE_NAMES}; got {rows.shape}"
            )
        with np.errstate(invalid="ignore"):
            sync, lag, coh, _, _, act = rows.T
            on = np.all(np.isfinite(rows), axis=1) & (act >= self.active)
            coherent = on & (coh >= self.coherence)
            a = np.abs(lag)
            wave = coherent & (a >= self.lag) & (a <= math.pi - self.lag)
            alternating = coherent & (a > math.pi - self.lag)
            synced = coherent & (a < self.lag) & (sync >= self.synchrony)
        kind = np.full(rows.shape[0], KINDS.index("none"))
        kind[on] = KINDS.index("incoherent")
        kind[synced] = KINDS.index("synchronous")
        kind[wave] = KINDS.index("travelling wave")
        kind[alternating] = KINDS.index("alternating")
        return kind

    def counts(self, rows) -> dict[str, int]:
        """How many rows of each kind (`KINDS` order)."""
        k = self(rows)
        return {name: int(np.sum(k == i)) for i, name in enumerate(KINDS)}
