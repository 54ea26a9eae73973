import numpy as np
import pytest

from medaka_heart.config import CycleConfig
from medaka_heart.cycles import (
    beat_intervals_s,
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


def _beats_at(n, fps, ed_times_s, period_s, ejection=0.5):
    """Volume-like signal, maxima exactly at ED = ed_times_s[0] + k period_s: a cosine fall
    over the `ejection` share of the period, then a cosine rise (slow filling if < 0.5)."""
    phase = ((np.arange(n) / fps - ed_times_s[0]) / period_s) % 1.0
    fall = 0.5 - 0.5 * np.cos(np.pi * np.minimum(phase / ejection, 1.0))
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip((phase - ejection) / (1 - ejection), 0, 1))
    return 1.0 - 0.6 * (fall - rise)


def test_an_ed_two_frames_into_the_video_is_found():
    # ED at frame 2.2: frames 0 and 1 are still filling, so its fall before frame 0 is unseen
    fps, period = 15.0, 7.5 / 15.0
    x = _beats_at(90, fps, [2.2 / fps], period)
    det = detect_cycles(x, fps)
    assert det.ed_index[0] == 2
    assert det.n_beats == 12


def test_an_es_on_the_last_frame_is_kept_when_the_fall_is_complete():
    fps, period_frames = 15.0, 8.0
    n = 3 + 8 * 10 + 4 + 1  # the last ES (ED + 4 frames) falls on the last frame
    x = _beats_at(n, fps, [3 / fps], period_frames / fps)
    det = detect_cycles(x, fps)
    assert det.es_index[-1] == n - 1
    # its minimum may lie after the last frame: the interval to it runs from ED to ED
    assert det.rr_s[-2] == pytest.approx(np.diff(det.ed_times_s)[-1])
    assert det.rr_s[-3] == pytest.approx((det.es_index[-2] + det.es_offset[-2]
                                          - det.es_index[-3] - det.es_offset[-3]) / fps)
    cut = x[: n - 2]  # two frames earlier the fall is only half done: no ES claimed
    det_cut = detect_cycles(cut, fps)
    assert det_cut.es_index[-1] == -1


def test_a_tiny_fall_before_the_last_frame_is_no_extra_ed():
    fps, period_frames = 15.0, 10.0
    n = 72  # the next ED (72.2) is after the last frame, frames 69-71 still filling
    x = _beats_at(n, fps, [2.2 / fps], period_frames / fps)
    x[-2] = x[-1] + 0.004  # the second-last frame becomes a local maximum that barely falls
    det = detect_cycles(x, fps)
    assert det.ed_index.tolist() == [2, 12, 22, 32, 42, 52, 62]


def test_an_ed_on_the_second_frame_at_a_high_rate_is_found():
    fps, period_frames = 12.9, 4.6  # ~170 bpm at 12.9 fps, as on 96-well plates
    x = _beats_at(40, fps, [1.1 / fps], period_frames / fps, ejection=0.3)
    det = detect_cycles(x, fps)
    assert det.ed_index[0] == 1


def test_first_ed_counts_when_the_frames_before_it_dip():
    """A maximum near the start with nothing higher before it: its filling began before
    frame 0, so a small dip in the first frames (segmentation noise) does not hide it."""
    fps, hr = 20.0, 120.0  # 10 frames per beat
    n = 10 * 5 + 3
    x = periodic(n, fps, hr, phase=-2 * np.pi * 3 / 10)  # EDs at frames 3, 13, ...
    x[:3] = x[3] - np.array([0.06, 0.09, 0.11])  # falls, then rises into the ED
    det = detect_cycles(x, fps)
    assert det.ed_index[0] == 3
    assert 7 <= det.es_index[0] <= 9
    x[:3] = x[3] + 0.05  # something higher before it: no longer cut by the edge
    assert detect_cycles(x, fps).ed_index[0] != 3


def test_beat_intervals_run_between_end_systoles_where_both_are_seen():
    ed = [0.0, 1.0, 2.1, 3.0]
    es = [0.3, 1.25, np.nan, 3.3]
    np.testing.assert_allclose(beat_intervals_s(ed, es), [0.95, 1.1, 0.9, np.nan])


def test_heart_rate_comes_from_the_sharp_minimum_not_the_flat_plateau():
    """Fast fall to a sharp ES, then a flat end-diastolic plateau with noise: where on the
    plateau the maximum lands is noise, so ED-ED intervals scatter; the intervals reported
    (ES to ES) keep the rate within a fraction of that scatter."""
    rng = np.random.default_rng(3)
    fps, period = 20.0, 9.3  # frames per beat
    t = np.arange(400.0)
    phase = ((t - 2.7) / period) % 1.0
    fall = np.clip(phase / 0.3, 0, 1)
    rise = np.clip((phase - 0.3) / 0.3, 0, 1)
    x = 1.0 - 0.4 * (0.5 - 0.5 * np.cos(np.pi * fall)) + 0.4 * (0.5 - 0.5 * np.cos(np.pi * rise))
    x += rng.normal(0, 0.01, t.size)
    det = detect_cycles(x, fps)
    rr_true = period / fps
    ed_scatter = np.median(np.abs(np.diff(det.ed_times_s) - rr_true))
    reported = np.median(np.abs(det.rr_s[:-1] - rr_true))
    assert reported < 0.5 * ed_scatter
    assert np.nanmean(60 / det.rr_s) == pytest.approx(60 * fps / period, rel=0.01)
