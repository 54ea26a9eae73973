import numpy as np
import pandas as pd
import pytest

from medaka_heart.cardiac import (
    beat_table,
    fractional_shortening_pct,
    prolate_spheroid_volume_pl,
    rr_variability_ms,
    summarise_beats,
)
from medaka_heart.cycles import detect_cycles
from medaka_heart.morphometry import measure_masks


def test_prolate_spheroid_volume_in_pl():
    # a sphere of diameter 10 um: 4/3 pi 5^3 um^3 = 523.6 um^3 = 0.5236 pl
    assert prolate_spheroid_volume_pl(10.0, 10.0) == pytest.approx(4 / 3 * np.pi * 125 / 1000)
    assert prolate_spheroid_volume_pl(20.0, 10.0) == pytest.approx(2 * 0.5235988, rel=1e-6)


def test_fractional_shortening():
    np.testing.assert_allclose(fractional_shortening_pct([100, 50], [60, 50]), [40, 0])
    assert np.isnan(fractional_shortening_pct(0.0, 1.0))


def test_rr_variability_by_hand():
    sdnn, rmssd = rr_variability_ms([0.5, 0.6, 0.5, np.nan])
    assert sdnn == pytest.approx(np.std([500, 600, 500], ddof=1))
    assert rmssd == pytest.approx(100.0)


def test_ellipse_law_end_to_end(law):
    """Masks of an ellipse whose axes follow a known law: ED/ES, HR, volumes and FS are exact."""
    duration = 10.0
    n = int(duration * law.fps)
    frames, _ = measure_masks(law.masks(n), law.pixel_size_um)
    frames.insert(1, "time_s", frames["frame"] / law.fps)
    det = detect_cycles(frames["volume_pl"].to_numpy(), law.fps)
    beats = beat_table(frames, det)
    summary = summarise_beats(beats)

    true_ed = law.ed_times(duration)
    true_ed = true_ed[(true_ed > 1 / law.fps) & (true_ed < (n - 2) / law.fps)]
    assert len(beats) == true_ed.size
    np.testing.assert_array_equal(beats["ed_frame"], np.round(true_ed * law.fps).astype(int))
    true_es = law.es_times(duration)
    es_pred = beats["es_time_s"].dropna().to_numpy()
    matched = true_es[np.argmin(np.abs(true_es[:, None] - es_pred[None]), axis=0)]
    np.testing.assert_array_equal(beats["es_frame"][beats["es_frame"] >= 0],
                                  np.round(matched * law.fps).astype(int))
    np.testing.assert_allclose(beats["ed_time_s"], true_ed, atol=0.15 / law.fps)

    assert summary.hr_bpm == pytest.approx(law.hr_bpm, rel=0.005)
    edv = law.volume_pl(law.a0, law.b0)
    esv = law.volume_pl(law.a0 * (1 - law.fa), law.b0 * (1 - law.fb))
    assert summary.edv_pl == pytest.approx(edv, rel=0.01)
    assert summary.esv_pl == pytest.approx(esv, rel=0.01)
    assert summary.ef_pct == pytest.approx(100 * (edv - esv) / edv, rel=0.01)
    assert summary.fs_minor_pct == pytest.approx(100 * law.fb, rel=0.01)
    assert summary.fs_major_pct == pytest.approx(100 * law.fa, rel=0.02)
    assert summary.fac_pct == pytest.approx(100 * (1 - (1 - law.fa) * (1 - law.fb)), rel=0.01)
    assert summary.sdnn_ms < 5  # a perfectly regular law


def test_empty_beat_table_summarises_to_nan():
    from medaka_heart.cycles import CycleDetection

    frames = pd.DataFrame({"area_um2": [1.0, 2.0], "major_um": [1.0, 1.0], "minor_um": [1.0, 1.0]})
    e = np.empty(0)
    det = CycleDetection(10.0, e.astype(int), e, e.astype(int), e, e, np.ones(2), np.nan,
                         e.astype(int), e.astype(int))
    beats = beat_table(frames, det)
    assert len(beats) == 0
    s = summarise_beats(beats)
    assert s.n_beats == 0
    assert np.isnan(s.hr_bpm)


def test_values_are_read_at_the_sampled_extremum_not_the_refined_frame():
    """If timing refinement moves ES to a neighbouring frame, ESV is still the sampled minimum."""
    from medaka_heart.cycles import CycleDetection

    volume = np.array([5.0, 9.0, 10.0, 6.0, 2.0, 3.0, 8.0, 10.0, 6.0, 2.0, 4.0])
    frames = pd.DataFrame({"area_um2": volume, "major_um": volume, "minor_um": volume})
    i = lambda *v: np.array(v, dtype=int)  # noqa: E731
    f = lambda *v: np.array(v, dtype=float)  # noqa: E731
    det = CycleDetection(10.0, i(2, 7), f(0.0, 0.0), i(5, 10), f(-0.4, 0.0), f(0.5, np.nan),
                         volume, 5.0, i(2, 7), i(4, 9))
    beats = beat_table(frames, det)
    assert beats["es_frame"].tolist() == [5, 10]
    # vertex of the parabola through frames 3-5 (6, 2, 3): offset 0.3, value 1.775
    assert beats["esv_pl"].iloc[0] == pytest.approx(1.775)


def test_sizes_read_by_interpolation_are_never_negative():
    """A noisy, nearly empty systole must not extrapolate to a negative ESV (EF > 100%)."""
    from medaka_heart.cycles import CycleDetection

    volume = np.array([9.0, 10.0, 4.0, 0.1, 0.0, 3.5, 9.0, 10.0, 5.0])
    frames = pd.DataFrame({"area_um2": volume, "major_um": volume, "minor_um": volume})
    i = lambda *v: np.array(v, dtype=int)  # noqa: E731
    det = CycleDetection(10.0, i(1), np.zeros(1), i(4), np.zeros(1), np.array([0.6]), volume,
                         6.0, i(1), i(4))
    beats = beat_table(frames, det)
    assert beats["esv_pl"].iloc[0] == 0.0
    assert beats["ef_pct"].iloc[0] == pytest.approx(100.0)
