"""Behaviour over time: what a simulation records, and the descriptors, goal
embeddings and losses that read it.

- An **observable** says which states a solve keeps: `Trajectory(start, every, genes,
  cells)` records the states after steps `first + every, first + 2·every, …, n_steps`
  of the window that begins at fraction `start` of the horizon. Only the window is
  stored (`Dynamics.solve` integrates up to it without saving), so a reduction over
  the last half never holds the first. Write your own by subclassing
  `AbstractObservable` (`window`, `select`).
- A recording reaches a **behaviour** (`AbstractBehaviour`) as a `Recording`: states
  `(replicates, times, cells, genes)` and their sampling step. Behaviours return a
  vector of declared size: `Spectrum` (the FFT goal embedding), `Oscillation`
  (offset, amplitude, frequency; zeros when not periodic) or your own.
- **Losses** (`AbstractTrajectoryLoss`) map a recording to a scalar to minimise:
  `TargetTrajectory` (distance to A cos 2πwt + b), `ReferenceTrajectory` (RMS
  distance of the replicate mean to a recorded reference, e.g. a teacher's).
- **Distances** (`AbstractDistance`) compare goal embeddings: `MeanAbsolute()`.
"""

import abc
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Scalar

from ._memory import available_memory
from ._validate import check_range
from .config import Configurable


def _as_indices(x):
    if x is None:
        return None
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return (int(x),)
    try:
        return tuple(int(v) if float(v) == int(v) else v for v in x)
    except (TypeError, ValueError):
        return x  # validation names the field


def _as_scalar(x):
    try:
        return jnp.asarray(x, jnp.float32)
    except (TypeError, ValueError):
        return x  # validation names the field


class Recording(NamedTuple):
    """What an observable recorded: `states` `(replicates, times, cells, genes)` (the
    selected cells and genes), sampled every `dt` time units from time `t0` on."""

    states: Float[Array, "replicates times cells genes"]
    dt: float
    t0: float

    @property
    def times(self) -> Float[Array, " times"]:
        return self.t0 + self.dt * jnp.arange(self.states.shape[1])


class AbstractObservable(Configurable):
    """Which states a solve keeps (see the module docstring)."""

    @abc.abstractmethod
    def window(self, n_steps: int) -> tuple[int, int]:
        """(first, every): record the states after steps first + every, first +
        2·every, …, up to `n_steps`; the steps before `first` are not stored."""

    @abc.abstractmethod
    def select(
        self, states: Float[Array, "*batch cells genes"]
    ) -> Float[Array, "*batch cells2 genes2"]:
        """The part of one step's states that is kept."""

    def samples(self, n_steps: int) -> int:
        first, every = self.window(n_steps)
        return (n_steps - first) // every

    def recording(self, states, n_steps: int, dt: float) -> Recording:
        """`states` `(replicates, times, …)` as a `Recording` with its times."""
        first, every = self.window(n_steps)
        return Recording(states, every * dt, (first + every) * dt)

    def check(self, n_steps: int, cells: int, genes: int) -> None:
        """Raise ValueError, naming the field, if this observable does not fit a run
        of `n_steps` steps, `cells` cells and `genes` genes."""

    def stored_bytes(self, n_steps: int, replicates: int, cells: int, genes: int) -> int:
        """Bytes a solve holds for the recording (the window, every step of it)."""
        first, _ = self.window(n_steps)
        one = jax.ShapeDtypeStruct((1, cells, genes), jnp.float32)
        shape = jax.eval_shape(self.select, one).shape
        return 4 * replicates * (n_steps - first) * int(np.prod(shape))

    def check_memory(
        self, n_steps: int, replicates: int, cells: int, genes: int, batch: int = 1
    ) -> None:
        """Refuse, before anything is built, a recording of `batch` simulations that
        would not fit in the memory available."""
        need = batch * self.stored_bytes(n_steps, replicates, cells, genes)
        have = available_memory()
        if need > have / 2:
            raise ValueError(
                f"{type(self).__name__}: recording {batch} simulation(s) of {n_steps} steps "
                f"needs about {need / 2**30:.3g} GiB but about {have / 2**30:.3g} GiB are "
                f"available: record a shorter window ({type(self).__name__}.start), fewer "
                f"genes or cells ({type(self).__name__}.genes, .cells), or smaller batches"
            )


class Trajectory(AbstractObservable):
    """The states after every `every`-th step of the window that begins at fraction
    `start` ∈ [0, 1) of the horizon (default the whole run), of the genes `genes` and
    cells `cells` (default all). `Trajectory(start=0.5, genes=(0,))` is gene 0 over
    the last half: 5 000 samples of a 10 000-step run, the first half never stored."""

    start: float = eqx.field(static=True, default=0.0)
    every: int = eqx.field(static=True, default=1)
    genes: tuple[int, ...] | None = eqx.field(static=True, default=None, converter=_as_indices)
    cells: tuple[int, ...] | None = eqx.field(static=True, default=None, converter=_as_indices)

    def __check_init__(self):
        check_range("Trajectory", "start", self.start, ge=0.0, lt=1.0)
        check_range("Trajectory", "every", self.every, ge=1, integer=True)
        for field in ("genes", "cells"):
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, tuple) or not value:
                raise ValueError(f"Trajectory.{field} must be None or indices; got {value!r}")
            for v in value:
                check_range("Trajectory", field, v, ge=0, integer=True)

    def window(self, n_steps: int) -> tuple[int, int]:
        return int(round(self.start * n_steps)), self.every

    def select(self, states):
        if self.cells is not None:
            states = states[..., np.asarray(self.cells), :]
        if self.genes is not None:
            states = states[..., np.asarray(self.genes)]
        return states

    def check(self, n_steps: int, cells: int, genes: int) -> None:
        if self.samples(n_steps) < 1:
            first, _ = self.window(n_steps)
            raise ValueError(
                f"Trajectory.every = {self.every} leaves no sample in the window of "
                f"{n_steps - first} steps: lower Trajectory.every or Trajectory.start"
            )
        for field, n in (("genes", genes), ("cells", cells)):
            value = getattr(self, field)
            if value is not None and max(value) >= n:
                raise ValueError(
                    f"Trajectory.{field} = {value} but the run has {n} {field}: expected "
                    f"indices 0 to {n - 1}"
                )


# ---------------------------------------------------------------- behaviours


class AbstractBehaviour(Configurable):
    """A vector describing a recording (a goal embedding or a binning descriptor):
    `__call__(recording)` returns `size(samples)` numbers, named by `names`."""

    @abc.abstractmethod
    def size(self, samples: int) -> int:
        """How many numbers `__call__` returns for a recording of `samples` times."""

    @abc.abstractmethod
    def __call__(self, recording: Recording) -> Float[Array, " size"]: ...

    def names(self, samples: int) -> tuple[str, ...]:
        return tuple(f"{type(self).__name__}[{i}]" for i in range(self.size(samples)))

    def bounds(self, recording_dt: float, samples: int) -> list[tuple[float, float]] | None:
        """The range of each number, for binning (`None`: not binnable)."""
        return None


def _signal(rec: Recording, cell: int, gene: int) -> Float[Array, "replicates times"]:
    return rec.states[:, :, cell, gene]


class Spectrum(AbstractBehaviour):
    """The real FFT of gene `gene` of cell `cell` (indices into the recording),
    averaged over replicates: its modulus |rfft| (default; shift invariant: the same
    oscillation at another phase is the same goal) or, with `modulus=False`, its real
    and imaginary parts side by side. The goal space of AutoDiscJax's oscillator
    tutorial (which uses the complex spectrum)."""

    gene: int = eqx.field(static=True, default=0)
    cell: int = eqx.field(static=True, default=0)
    modulus: bool = eqx.field(static=True, default=True)

    def size(self, samples):
        return (samples // 2 + 1) * (1 if self.modulus else 2)

    def __call__(self, recording):
        f = jnp.fft.rfft(_signal(recording, self.cell, self.gene), axis=-1)
        out = jnp.abs(f) if self.modulus else jnp.concatenate([f.real, f.imag], -1)
        return jnp.mean(out, axis=0)


class OscillationTest(NamedTuple):
    """Per replicate: periodic or not, offset (mean), amplitude (max − min) and the
    main frequency (cycles per time unit)."""

    periodic: Bool[Array, " replicates"]
    offset: Float[Array, " replicates"]
    amplitude: Float[Array, " replicates"]
    frequency: Float[Array, " replicates"]


class Oscillation(AbstractBehaviour):
    """(offset, amplitude, frequency) of gene `gene` of cell `cell` when it
    oscillates, (0, 0, 0) when it does not (the tutorial's binning), averaged over
    replicates. The test (`detect`, AutoDiscJax's `is_periodic` rule): the largest
    |FFT| over the positive frequencies below Nyquist exceeds `threshold` and is not
    at the first of them; amplitude = max − min, offset = mean, frequency = the
    peak's. The threshold is on the unnormalised FFT, so it scales with the number
    of samples (40 for the tutorial's 5 000)."""

    gene: int = eqx.field(static=True, default=0)
    cell: int = eqx.field(static=True, default=0)
    threshold: float = eqx.field(static=True, default=40.0)

    def __check_init__(self):
        check_range("Oscillation", "threshold", self.threshold, ge=0.0)

    def size(self, samples):
        return 3

    def names(self, samples):
        return ("offset", "amplitude", "frequency")

    def bounds(self, recording_dt, samples):
        return [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0 / (2.0 * recording_dt))]

    def detect(self, recording: Recording) -> OscillationTest:
        x = _signal(recording, self.cell, self.gene)
        n = x.shape[-1]
        sp = jnp.abs(jnp.fft.rfft(x, axis=-1))[:, 1 : n // 2]  # = |fft| there
        freqs = jnp.fft.fftfreq(n, d=recording.dt)[1 : n // 2]
        peak = jnp.argmax(sp, axis=-1)
        periodic = (jnp.max(sp, axis=-1) > self.threshold) & (peak > 0)
        periodic = periodic & jnp.all(jnp.isfinite(x), axis=-1)
        amplitude = jnp.max(x, axis=-1) - jnp.min(x, axis=-1)
        return OscillationTest(periodic, jnp.mean(x, axis=-1), amplitude, freqs[peak])

    def __call__(self, recording):
        t = self.detect(recording)
        d = jnp.stack([t.offset, t.amplitude, t.frequency], -1)
        return jnp.mean(jnp.where(t.periodic[:, None], d, 0.0), axis=0)


class Behaviour(AbstractBehaviour):
    """Your own behaviour: `fn(recording) -> (n,)` with its declared size `n` (checked
    against what `fn` returns before anything runs) and optional `bounds`."""

    fn: object = eqx.field(static=True)
    n: int = eqx.field(static=True)
    label: str = eqx.field(static=True, default="custom")
    ranges: tuple | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not callable(self.fn):
            raise ValueError(f"Behaviour.fn must be callable; got {self.fn!r}")
        check_range("Behaviour", "n", self.n, ge=1, integer=True)

    def size(self, samples):
        return self.n

    def __call__(self, recording):
        return self.fn(recording)

    def names(self, samples):
        return tuple(f"{self.label}[{i}]" for i in range(self.n))

    def bounds(self, recording_dt, samples):
        return None if self.ranges is None else [tuple(map(float, r)) for r in self.ranges]


# ---------------------------------------------------------------- distances, losses


class AbstractDistance(Configurable):
    """How far reached goal embeddings are from a target goal, per dimension scaled by
    `scale` (the goal space's range): `(…, D), (D,), (D,) -> (…)`."""

    @abc.abstractmethod
    def __call__(
        self, reached: Float[Array, "*batch dims"], goal: Float[Array, " dims"], scale
    ) -> Float[Array, "*batch"]: ...


class MeanAbsolute(AbstractDistance):
    """mean_d |reached_d − goal_d| / scale_d (the tutorial's goal distance)."""

    def __call__(self, reached, goal, scale):
        return jnp.mean(jnp.abs(reached - goal) / scale, axis=-1)


class Euclidean(AbstractDistance):
    """‖(reached − goal) / scale‖₂."""

    def __call__(self, reached, goal, scale):
        return jnp.sqrt(jnp.sum(jnp.square((reached - goal) / scale), axis=-1))


class AbstractTrajectoryLoss(Configurable):
    """A scalar to minimise, of a recording (a trajectory objective)."""

    @abc.abstractmethod
    def __call__(self, recording: Recording) -> Scalar: ...


class TargetTrajectory(AbstractTrajectoryLoss):
    """L = √Σₜ (y(t) − (A cos 2πwt + b))² for gene `gene` of cell `cell` over the
    recorded times, averaged over replicates (Hiscock's oscillator target, with the
    offset b of the AutoDiscJax tutorial). A, w and b are array leaves, so a new
    target does not recompile a jitted loss."""

    amplitude: Float[Array, ""] = eqx.field(converter=_as_scalar)
    frequency: Float[Array, ""] = eqx.field(converter=_as_scalar)
    offset: Float[Array, ""] = eqx.field(converter=_as_scalar)
    gene: int = eqx.field(static=True, default=0)
    cell: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        for f in ("amplitude", "frequency", "offset"):
            check_range("TargetTrajectory", f, getattr(self, f))

    def target(self, times: Float[Array, " times"]) -> Float[Array, " times"]:
        return self.amplitude * jnp.cos(2 * math.pi * self.frequency * times) + self.offset

    def __call__(self, recording):
        y = _signal(recording, self.cell, self.gene)
        err = jnp.sum(jnp.square(y - self.target(recording.times)), axis=-1)
        return jnp.mean(jnp.sqrt(err))


class ReferenceTrajectory(AbstractTrajectoryLoss):
    """L = the RMS over times, cells and genes of (the replicate mean of the recording
    − `reference`), a `(times, cells, genes)` array recorded by the same observable
    (e.g. a teacher regulator's mean trajectory: a fit whose optimum is reachable).
    The mean is taken first, so L falls to the noise floor of R replicates, not to 0."""

    reference: Float[Array, "times cells genes"] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        shape = np.shape(self.reference)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(
                f"ReferenceTrajectory.reference must be a (times, cells, genes) array; "
                f"got shape {shape}"
            )
        if not bool(np.all(np.isfinite(np.asarray(self.reference)))):
            raise ValueError("ReferenceTrajectory.reference must be finite")

    def __call__(self, recording):
        mean = jnp.mean(recording.states, axis=0)
        if mean.shape != self.reference.shape:
            raise ValueError(
                f"ReferenceTrajectory: the recording is {mean.shape} (times, cells, genes) "
                f"but the reference is {self.reference.shape}: record it with the same "
                "observable and dynamics"
            )
        return jnp.sqrt(jnp.mean(jnp.square(mean - self.reference)))
