import numpy as np
import pytest

from medaka_heart.config import CycleConfig
from medaka_heart.cycles import (
    detect_cycles,
    dominant_period_frames,
    fill_gaps,
    parabolic_offset,
    value_at,
)


def periodic(n, fps, hr_bpm, phase=0.4):
    t = np.arange(n) / fps
    return 1.0 + 0.3 * np.cos(2 * np.pi * hr_bpm / 60 * t + phase)


def test_parabolic_offset_finds_vertex_of_a_parabola():
    x = np.arange(5.0)
    y = -((x - 2.3) ** 2)
    assert parabolic_offset(y, 2) == pytest.approx(0.3)
    assert value_at(y, 2, 0.3) == pytest.approx(0.0)


def test_parabolic_offset_is_zero_at_edges():
    y = np.array([3.0, 1.0, 0.0])
    assert parabolic_offset(y, 0) == 0.0
    assert parabolic_offset(y, 2) == 0.0


def test_fill_gaps_interpolates_linearly():
    np.testing.assert_allclose(fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])),
                               [1, 1, 2, 3, 3])


@pytest.mark.parametrize(("fps", "hr"), [(15, 130), (30, 90), (12.9, 170), (60, 240)])
def test_dominant_period_matches_law(fps, hr):
    x = periodic(400, fps, hr)
    period = dominant_period_frames(x, 60 * fps / 300, 60 * fps / 40)
    assert period == pytest.approx(60 * fps / hr, rel=0.02)


@pytest.mark.parametrize(("fps", "hr", "phase"), [(15, 130, 0.4), (30, 90, 2.0), (12.9, 170, 1.0),
                                                  (20, 60, 0.0)])
def test_detect_cycles_on_cosine(fps, hr, phase):
    n = int(fps * 12)
    x = periodic(n, fps, hr, phase)
    det = detect_cycles(x, fps, CycleConfig())
    f = hr / 60
    true_ed = (2 * np.pi * np.arange(0, 40) - phase) / (2 * np.pi * f)
    true_ed = true_ed[(true_ed > 0.5 / fps) & (true_ed < (n - 1.5) / fps)]
    assert det.n_beats == true_ed.size
    np.testing.assert_allclose(det.ed_times_s, true_ed, atol=0.15 / fps)
    assert np.nanmean(60 / det.rr_s) == pytest.approx(hr, rel=0.005)
    es = det.es_index[det.es_index >= 0]
    assert np.all(es > det.ed_index[: es.size])


def test_edge_beats_are_partial():
    # starts at systole, ends during ejection: the last ED has no ES and no interval
    fps, hr = 20.0, 120.0
    n = 2 * 10 * 4 + 13  # 4 full beats of 10 frames plus part of one
    x = periodic(n, fps, hr, phase=np.pi)
    det = detect_cycles(x, fps)
    assert det.ed_index[0] == 5  # first maximum, not frame 0
    assert np.isnan(det.rr_s[-1])
    assert det.es_index[-1] == -1 or det.es_index[-1] < n - 1


def test_constant_and_empty_signals_give_no_beats():
    assert detect_cycles(np.ones(100), 15).n_beats == 0
    assert detect_cycles(np.full(100, np.nan), 15).n_beats == 0
    assert detect_cycles(np.array([1.0, 2.0]), 15).n_beats == 0


def test_noise_does_not_add_beats():
    rng = np.random.default_rng(0)
    fps, hr = 15.0, 130.0
    x = periodic(300, fps, hr) + rng.normal(0, 0.02, 300)
    det = detect_cycles(x, fps)
    expected = 300 / fps * hr / 60
    assert abs(det.n_beats - expected) <= 1.5
    assert np.nanmedian(60 / det.rr_s) == pytest.approx(hr, rel=0.03)


def test_invalid_fps_is_rejected():
    with pytest.raises(ValueError, match="fps"):
        detect_cycles(np.ones(10), 0)


def test_template_refinement_beats_parabola_on_a_sharp_waveform():
    """A cusp-like ED (fast ejection right after filling): the 3-point parabola's error depends
    on where the samples fall; aligning all beats to a common template makes the intervals
    (hence per-beat heart rate) several times more precise, without a larger absolute error."""
    from medaka_heart.cycles import refine_by_template

    fps, hr = 15.0, 165.0
    period = 60 * fps / hr
    true_ed = np.arange(1.3, 170, period)
    t = np.arange(180.0)
    phase = ((t[:, None] - true_ed[None]) % period).min(axis=1) / period  # 0 at ED
    ejection = np.clip(phase / 0.35, 0, 1)
    filling = np.clip((phase - 0.35) / 0.65, 0, 1)
    contraction = np.where(phase < 0.35, 0.5 - 0.5 * np.cos(np.pi * ejection),
                           0.5 + 0.5 * np.cos(np.pi * filling**0.6))
    signal = 1.0 - 0.5 * contraction
    peaks = np.round(true_ed).astype(int)
    peaks = peaks[(peaks > 0) & (peaks < t.size - 1)]
    truth = true_ed[: peaks.size]
    parabola = np.array([p + parabolic_offset(signal, p) for p in peaks])
    template = refine_by_template(signal, parabola, period, maximum=True)
    assert np.abs(template - truth).mean() <= np.abs(parabola - truth).mean()
    assert np.std(np.diff(template)) < 0.3 * np.std(np.diff(parabola))
