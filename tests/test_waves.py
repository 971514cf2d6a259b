"""Tissue descriptors over time: synchrony, phase lag, wave kinds (diffgrn.waves)."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import diffgrn
from diffgrn.observe import Recording
from diffgrn.waves import KINDS, PeakPhase, PhaseLag, Synchrony, WaveKind, Waves, pairs_along

DT = 0.05
T = np.arange(800) * DT  # 40 time units


@eqx.filter_jit
def _call(behaviour, rec):
    return behaviour(rec)


def call(behaviour, rec) -> np.ndarray:
    """One compiled evaluation (eager dispatch of every small op is slower)."""
    return np.asarray(_call(behaviour, rec))


def recording(x, dt=DT):
    """(times, cells) or (replicates, times, cells) of gene 0 -> a Recording."""
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x[None]
    return Recording(jnp.asarray(x[..., None]), dt, 0.0)


def wave(phases, freq=0.313, amp=0.3):
    """x_c(t) = 0.5 + amp cos(2π f t + φ_c): frequency between two FFT bins."""
    return 0.5 + amp * np.cos(2 * np.pi * freq * T[:, None] + np.asarray(phases)[None])


def test_identical_cells_are_synchronous():
    rec = recording(wave(np.full(9, 0.7)))
    sync, lag, coh, amp, freq, active = call(Waves(), rec)
    assert sync == pytest.approx(1.0, abs=1e-5)
    assert float(call(Synchrony(), rec)[0]) == pytest.approx(1.0, abs=1e-5)
    assert lag == pytest.approx(0.0, abs=1e-4) and coh == pytest.approx(1.0, abs=1e-5)
    assert amp == pytest.approx(0.3, rel=0.02)  # between two bins: no scalloping loss
    assert freq == pytest.approx(0.313, abs=1 / (T.size * DT))  # within one bin
    assert active == 1.0
    assert KINDS[WaveKind()(call(Waves(), rec)[None])[0]] == "synchronous"


def test_random_phases_are_not_synchronous():
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, 400)
    rec = recording(wave(phases))
    sync, lag, coh = call(Waves(), rec)[:3]
    assert sync < 0.15  # about 1/sqrt(400) = 0.05
    assert coh < 0.15
    assert KINDS[WaveKind()(call(Waves(), rec)[None])[0]] == "incoherent"


@pytest.mark.parametrize("delta", [0.4, -1.1, 2.5])
def test_phase_lag_recovers_a_travelling_wave(delta):
    # Cell c peaks c·delta/(2πf) later than cell 0: the wave runs up the chain when
    # delta > 0, and the lag φ_i − φ_{i+1} is +delta.
    n = 10
    rec = recording(wave(-delta * np.arange(n)))
    lag, coh = call(PhaseLag(), rec)
    assert lag == pytest.approx(delta, abs=0.02)
    assert coh == pytest.approx(1.0, abs=1e-3)
    assert KINDS[WaveKind()(call(Waves(), rec)[None])[0]] == "travelling wave"


def test_twisted_ring_and_lattice_rows():
    n = 12  # one winding round a ring: lag 2π/12 on every pair, the wrap pair included
    ring = diffgrn.Chain(n, "periodic")
    rec = recording(wave(-2 * np.pi * np.arange(n) / n))
    lag, coh = call(PhaseLag(pairs_along(ring)), rec)
    assert lag == pytest.approx(2 * np.pi / n, abs=0.02) and coh == pytest.approx(1.0, abs=1e-3)
    assert float(call(Synchrony(), rec)[0]) < 0.01  # a full winding: the phasors cancel
    sheet = diffgrn.Lattice(3, 4, "square", "periodic")
    pairs = pairs_along(sheet)
    assert len(pairs) == 12 and (3, 0) in pairs and (0, 1) in pairs and (0, 4) not in pairs
    c = np.arange(12) % 4  # a wave along the rows, the same in every row
    rec = recording(wave(-2 * np.pi * c / 4))
    lag, coh = call(PhaseLag(pairs), rec)
    assert lag == pytest.approx(np.pi / 2, abs=0.02) and coh == pytest.approx(1.0, abs=1e-3)
    assert len(pairs_along(diffgrn.Chain(5, "open"))) == 4


def test_quiet_tissue_and_replicates():
    quiet = recording(np.full((T.size, 6), 0.4))
    sync, lag, coh, amp, freq, active = call(Waves(), quiet)
    assert sync == 0 and coh == 0 and active == 0 and freq == 0
    assert KINDS[WaveKind()(call(Waves(), quiet)[None])[0]] == "none"
    # Replicates are averaged: one synchronous, one with half its cells quiet.
    half = wave(np.zeros(6))
    half[:, 3:] = 0.4
    rec = recording(np.stack([wave(np.zeros(6)), half]))
    assert float(call(Synchrony(), rec)[0]) == pytest.approx(0.75, abs=1e-4)
    assert float(call(Waves(), rec)[5]) == pytest.approx(0.75)
    # A larger floor makes the same cells quiet.
    assert float(call(Synchrony(phase=PeakPhase(floor=0.5)), rec)[0]) == 0.0
    rows = np.array([[1, 0, 1, 0.3, 0.3, 1], [np.nan] * 6, [0.1, 3.1, 0.95, 0.3, 0.3, 1]])
    assert [KINDS[k] for k in WaveKind()(rows)] == ["synchronous", "none", "alternating"]
    assert WaveKind().counts(rows)["alternating"] == 1


def test_config_round_trips():
    for obj in (
        Waves(pairs_along(diffgrn.Chain(4, "periodic")), gene=1),
        Synchrony(phase=PeakPhase(floor=0.1)),
        PhaseLag(((0, 2), (2, 1))),
        WaveKind(synchrony=0.8, lag=0.2),
    ):
        back = diffgrn.from_config(obj.config())
        assert back == obj and back.config() == obj.config()


def test_bad_fields_are_named(without_type_checks):
    with pytest.raises(ValueError, match="PeakPhase.floor"):
        PeakPhase(floor=-1.0)
    with pytest.raises(ValueError, match="Synchrony.gene"):
        Synchrony(gene=-1)
    with pytest.raises(ValueError, match="Waves.phase"):
        Waves(phase="fft")
    with pytest.raises(ValueError, match="PhaseLag.pairs"):
        PhaseLag(pairs=[(0, 1, 2)])
    with pytest.raises(ValueError, match="PhaseLag.pairs"):
        PhaseLag(pairs=[(1, 1)])
    with pytest.raises(ValueError, match="PhaseLag.pairs"):
        PhaseLag(pairs=[])
    with pytest.raises(ValueError, match="WaveKind.lag"):
        WaveKind(lag=2.0)
    with pytest.raises(ValueError, match="WaveKind.coherence"):
        WaveKind(coherence=0.0)
    rec = recording(wave(np.zeros(4)))
    with pytest.raises(ValueError, match="PhaseLag.pairs names cell 7 .* 4 cells"):
        PhaseLag(pairs=[(0, 7)])(rec)
    with pytest.raises(ValueError, match="Synchrony.gene = 2 .* 1 genes"):
        Synchrony(gene=2)(rec)
    with pytest.raises(ValueError, match="at least 2 cells"):
        PhaseLag()(recording(wave(np.zeros(1))))
    with pytest.raises(ValueError, match="at least 4 recorded times"):
        Waves()(Recording(jnp.zeros((1, 3, 4, 1)), DT, 0.0))
    with pytest.raises(ValueError, match="WaveKind: expected Waves rows"):
        WaveKind()(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="pairs_along.tissue"):
        pairs_along("ring")


def test_lag_sign_does_not_depend_on_where_the_wave_starts():
    # The same wave read from a shifted time window keeps its lag (phase differences
    # only): the estimate is not tied to the window's origin.
    n, delta = 8, 0.9
    x = wave(-delta * np.arange(n))
    for start in (0, 37, 211):
        lag = float(call(PhaseLag(), recording(x[start : start + 500]))[0])
        assert lag == pytest.approx(delta, abs=0.02)
