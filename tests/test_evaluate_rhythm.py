"""Rhythm errors against trains whose answers are known by hand."""

import numpy as np
import pytest

from medaka_heart.evaluate_rhythm import rate_error_pct, rhythm_errors, true_beat_times


def test_a_shifted_copy_of_the_truth_has_no_error():
    true = np.arange(20) * 0.5 + 0.2
    errors = rhythm_errors(true + 0.13, true, fps=20.0)  # another phase of the same beats
    assert errors.hr_err_pct == pytest.approx(0.0, abs=1e-9)
    assert errors.beat_hr_err_pct_median == pytest.approx(0.0, abs=1e-9)
    assert errors.timing_err_frames_median == pytest.approx(0.0, abs=1e-9)
    assert (errors.n_beats_pred, errors.n_beats_true) == (20, 20)


def test_a_missed_beat_and_jitter_are_counted():
    true = np.arange(21) * 0.5
    pred = np.delete(true, 10)  # one beat missed: one interval twice as long
    errors = rhythm_errors(pred, true, fps=10.0)
    assert errors.hr_err_pct == pytest.approx(5.0)  # 19 intervals over the span of 20
    assert errors.beat_hr_err_pct_median == pytest.approx(0.0, abs=1e-9)  # 18 of 19 exact
    jitter = true + np.where(np.arange(21) % 2, 0.02, -0.02)  # +-0.2 frames at 10 fps
    timing = rhythm_errors(jitter, true, fps=10.0).timing_err_frames_median
    assert timing == pytest.approx(0.2, abs=0.015)  # (the typical delay takes the odd one)


def test_a_rate_off_by_two_percent():
    true = np.arange(30) * 0.5
    errors = rhythm_errors(np.arange(30) * 0.5 / 1.02, true, fps=15.0)
    assert errors.hr_err_pct == pytest.approx(2.0, rel=1e-6)
    assert rate_error_pct(98.0, 100.0) == pytest.approx(2.0)
    assert np.isnan(rate_error_pct(np.nan, 100.0))


def test_true_beat_times_are_end_systoles_where_given():
    import pandas as pd

    beats = pd.DataFrame({"ed_time_s": [0.0, 1.0], "es_time_s": [0.3, np.nan]})
    np.testing.assert_allclose(true_beat_times(beats), [0.3, 1.0])


def test_the_rhythm_benchmark_script_tabulates(load_script):
    bench = load_script("bench_rhythm")
    rows = [{"set": "s", "video": "a", "hr_err_pct": 1.0, "segmentation_hr_err_pct": 4.0,
             "intensity_hr_err_pct": 0.5, "qc_rhythm_pass": True,
             "beat_hr_err_pct_median": 2.0, "timing_err_frames_median": 0.1},
            {"set": "s", "video": "b", "hr_err_pct": 3.0, "segmentation_hr_err_pct": np.nan,
             "intensity_hr_err_pct": 0.7, "qc_rhythm_pass": False,
             "beat_hr_err_pct_median": 4.0, "timing_err_frames_median": 0.3}]
    line = bench.markdown(rows).splitlines()[-1]
    assert line == "| s | 2 | 2.00 / 3.00 | 4.00 / 4.00 | 0.60 / 0.70 | 3.00 | 0.20 | 1/2 |"
