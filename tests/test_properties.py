"""Property-based tests (hypothesis) of beat detection and the beat table.

On any signal (finite, constant, monotone, 0-5 samples, periodic with noise, with NaN
gaps, mostly NaN) `cycles.detect_cycles` and `cardiac.beat_table` must not crash and their
beats must be well ordered: ED frames strictly increasing, each ES after its ED and before
the next ED (in refined time, frame + offset; the rounded frames may coincide), sub-frame
offsets within [-0.5, 0.5], intervals positive.

Values are drawn within +-1e6 (plus regressions at 1e-292); beyond ~1e150 the
autocorrelation overflows (a RuntimeWarning, the order still holds), far from any volume
in pl. Examples are derandomized (same in every run); raise max_examples to explore.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medaka_heart.cardiac import beat_table
from medaka_heart.cycles import detect_cycles
from medaka_heart.schema import BEAT_COLUMNS

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
fps_values = st.floats(min_value=1.0, max_value=200.0)


@st.composite
def periodic(draw) -> np.ndarray:
    """A beating-like signal: a (possibly skewed) periodic wave, noise, drift, random length."""
    n = draw(st.integers(6, 400))
    period = draw(st.floats(2.0, 60.0))
    phase = draw(st.floats(0.0, 2 * np.pi))
    skew = draw(st.floats(0.0, 0.9))
    noise = draw(st.floats(0.0, 0.5))
    drift = draw(st.floats(-0.02, 0.02))
    seed = draw(st.integers(0, 2**32 - 1))
    t = np.arange(n)
    x = 2 * np.pi * t / period + phase
    wave = np.sin(x + skew * np.sin(x))
    rng = np.random.default_rng(seed)
    return 100.0 + 20.0 * wave + 20.0 * noise * rng.standard_normal(n) + drift * t


@st.composite
def with_nan(draw, base) -> np.ndarray:
    """`base` with some samples (from none to all) set to NaN."""
    x = np.array(draw(base), dtype=float)
    if x.size:
        mask = draw(arrays(bool, x.size))
        x[mask] = np.nan
    return x


signals = st.one_of(
    arrays(float, st.integers(0, 5), elements=finite),  # very short
    arrays(float, st.integers(6, 300), elements=finite),  # arbitrary
    st.builds(lambda v, n: np.full(n, v), finite, st.integers(0, 300)),  # constant
    st.builds(lambda d: np.cumsum(np.abs(d)), arrays(float, st.integers(0, 300),  # monotone
                                                     elements=st.floats(0, 1e3))),
    periodic(),
    with_nan(periodic()),
    with_nan(arrays(float, st.integers(0, 300), elements=finite)),
)


def check_detection(d, n: int) -> None:
    """The ordering and range invariants of a CycleDetection of an n-sample signal."""
    k = d.n_beats
    for name in ("ed_index", "ed_offset", "es_index", "es_offset", "rr_s"):
        assert getattr(d, name).shape == (k,), name
    assert d.signal.shape == (n,)
    ed, es = d.ed_index, d.es_index
    assert np.all((ed >= 0) & (ed < n))
    assert np.all(np.diff(ed) > 0), f"ED not strictly increasing: {ed}"
    seen = es >= 0
    assert np.all(es[~seen] == -1)
    assert np.all(es[seen] < n)
    for off in (d.ed_offset, d.es_offset):
        assert np.all(np.isfinite(off)), off
        assert np.all(np.abs(off) <= 0.5), off
    # in refined time (frame + offset): ED < its ES < next ED; frames may round to the same
    ed_t, es_t = ed + d.ed_offset, es + d.es_offset
    next_ed = np.append(ed_t[1:], n)
    assert np.all(np.diff(ed_t) > 0)
    assert np.all(es_t[seen] > ed_t[seen]), f"ES not after its ED: {ed_t}, {es_t}"
    assert np.all(es_t[seen] < next_ed[seen]), f"ES not before the next ED: {ed_t}, {es_t}"
    assert np.all(es[seen] >= ed[seen])
    assert np.all(es[seen] <= np.append(ed[1:], n)[seen])
    if k:
        assert np.isnan(d.rr_s[-1])
        assert np.all(d.rr_s[:-1] > 0)
        assert np.all(np.isfinite(d.rr_s[:-1]))


# counterexamples hypothesis found, kept as regressions
ALTERNATING = 100.0 + 17.0 * (-1.0) ** np.arange(21) + 0.03 * np.arange(21)  # faster than HR max
TINY = np.array([0.0, 7.18443876e-292] * 4 + [0.0])  # too small to z-score


@SETTINGS
@given(signal=signals, fps=fps_values)
@example(signal=ALTERNATING, fps=15.0)
@example(signal=TINY, fps=1.0)
def test_detect_cycles_orders_every_beat(signal, fps):
    d = detect_cycles(signal, fps)
    check_detection(d, len(signal))


@SETTINGS
@given(signal=st.one_of(periodic(), with_nan(periodic())), fps=fps_values,
       axes=st.floats(0.1, 10.0))
def test_beat_table_rows_follow_the_detection(signal, fps, axes):
    n = len(signal)
    minor = np.cbrt(np.abs(np.nan_to_num(signal)) + 1.0)
    frames = pd.DataFrame({"frame": np.arange(n), "area_um2": minor**2 * axes,
                           "major_um": minor * axes, "minor_um": minor, "volume_pl": signal})
    d = detect_cycles(signal, fps)
    check_detection(d, n)
    beats = beat_table(frames, d)
    assert list(beats.columns) == list(BEAT_COLUMNS)
    assert len(beats) == d.n_beats
    np.testing.assert_array_equal(beats["beat"], np.arange(d.n_beats))
    np.testing.assert_array_equal(beats["ed_frame"], d.ed_index)
    np.testing.assert_array_equal(beats["es_frame"], d.es_index)
    seen = beats["es_frame"] >= 0
    assert beats["es_time_s"][~seen].isna().all()
    assert beats["esv_pl"][~seen].isna().all()
    assert (beats["ed_time_s"][seen] <= beats["es_time_s"][seen]).all()
    assert (beats["ed_time_s"].diff().dropna() > 0).all()
    rr = beats["rr_s"].to_numpy(float)
    np.testing.assert_allclose(beats["hr_bpm"].to_numpy(float)[:-1], 60.0 / rr[:-1])
    np.testing.assert_allclose(beats["sv_pl"].to_numpy(float),
                               beats["edv_pl"].to_numpy(float) - beats["esv_pl"].to_numpy(float))


@pytest.mark.parametrize("n", range(6))
@pytest.mark.parametrize("kind", ["zigzag", "ramp", "nan"])
def test_very_short_signals(n, kind):
    """0-5 samples, every one of them: well-ordered beats or none."""
    x = {"zigzag": np.arange(n) % 2, "ramp": np.arange(n), "nan": np.full(n, np.nan)}[kind]
    d = detect_cycles(x.astype(float), 15.0)
    check_detection(d, n)
    if kind != "zigzag":
        assert d.n_beats == 0
