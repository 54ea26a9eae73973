"""Tests of evaluate.py on beat tables and masks whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medaka_heart.cli.evaluate import parse_thresholds
from medaka_heart.evaluate import (
    METRIC_NAMES,
    compare_beats,
    dice_per_frame,
    dice_stream,
    local_tolerance_s,
    match_events,
    summarise_errors,
)
from medaka_heart.evaluate_report import failed_thresholds, paper_table
from medaka_heart.schema import BEAT_COLUMNS

FPS = 20.0


def truth_beats(n: int = 6, period_s: float = 0.8, fps: float = FPS, t0: float = 0.23,
                systole_s: float = 0.31) -> pd.DataFrame:
    """Beats of a regular heart: ED at t0 + k * period, ES systole_s later (exact times)."""
    ed_t = t0 + period_s * np.arange(n)
    es_t = ed_t + systole_s
    rr = np.append(np.diff(ed_t), np.nan)
    edv = 2.0 + 0.1 * np.arange(n)
    esv = 1.0 + 0.05 * np.arange(n)
    ed_minor, es_minor = 10.0 + np.arange(n), 8.0 + np.arange(n)
    ed_major, es_major = 20.0 + np.arange(n), 18.0 + np.arange(n)
    beats = pd.DataFrame({
        "beat": np.arange(n),
        "ed_frame": np.round(ed_t * fps).astype(int),
        "es_frame": np.round(es_t * fps).astype(int),
        "ed_time_s": ed_t,
        "es_time_s": es_t,
        "rr_s": rr,
        "hr_bpm": 60.0 / rr,
        "edv_pl": edv,
        "esv_pl": esv,
        "sv_pl": edv - esv,
        "ef_pct": 100 * (edv - esv) / edv,
        "fs_minor_pct": 100 * (ed_minor - es_minor) / ed_minor,
        "fs_major_pct": 100 * (ed_major - es_major) / ed_major,
        "fac_pct": 30.0,
        "ed_area_um2": 300.0,
        "es_area_um2": 210.0,
        "ed_major_um": ed_major,
        "es_major_um": es_major,
        "ed_minor_um": ed_minor,
        "es_minor_um": es_minor,
    })
    return beats[list(BEAT_COLUMNS)]


def shifted(beats: pd.DataFrame, frames: float) -> pd.DataFrame:
    """ED and ES moved by `frames` frames (integer frames and refined times)."""
    out = beats.copy()
    for phase in ("ed", "es"):
        out[f"{phase}_frame"] = out[f"{phase}_frame"] + int(round(frames))
        out[f"{phase}_time_s"] = out[f"{phase}_time_s"] + frames / FPS
    return out


# --- match_events -------------------------------------------------------------------------


def test_match_events_pairs_within_tolerance_one_to_one():
    m = match_events([0.1, 1.05, 2.6, 5.0], [0.0, 1.0, 2.0, 3.0], 0.5)
    np.testing.assert_array_equal(m.true_index, [0, 1, 3])
    np.testing.assert_array_equal(m.pred_index, [0, 1, 2])
    np.testing.assert_allclose(m.dt_s, [0.1, 0.05, -0.4])
    assert (m.n_matched, m.n_missed, m.n_false) == (3, 1, 1)
    np.testing.assert_array_equal(m.pred_for_true(), [0, 1, -1, 2])


def test_match_events_two_predictions_near_one_truth_match_once():
    m = match_events([0.98, 1.01], [1.0], 0.5)
    assert m.n_matched == 1
    assert m.n_false == 1
    np.testing.assert_array_equal(m.pred_index, [1])  # the nearer one


def test_match_events_maximises_pairs_before_minimising_distance():
    # pred 0.45 is nearest to truth 0.8 (0.35) but only it can reach truth 0.0 (0.45);
    # pred 1.1 can reach truth 0.8 (0.3). Best: both truths matched.
    m = match_events([0.45, 1.1], [0.0, 0.8], 0.5)
    np.testing.assert_array_equal(m.pred_for_true(), [0, 1])


def test_match_events_per_event_tolerance_and_empty():
    m = match_events([0.3, 2.3], [0.0, 2.0], [0.2, 0.4])
    np.testing.assert_array_equal(m.pred_for_true(), [-1, 1])
    e = match_events([], [1.0, 2.0], 0.5)
    assert (e.n_matched, e.n_missed, e.n_false) == (0, 2, 0)
    np.testing.assert_array_equal(e.pred_for_true(), [-1, -1])


def test_local_tolerance_is_half_the_local_rr():
    tol = local_tolerance_s([0.0, 1.0, 2.2, 3.0])
    # own interval to the next event; the last uses the interval before it
    np.testing.assert_allclose(tol, [0.5, 0.6, 0.4, 0.4])
    tol = local_tolerance_s([0.0, 1.0, 2.0], rr_s=[np.nan, 2.0, np.nan])
    # NaN -> interval before; the first has none: median of the others (2.0, 1.0) = 1.5
    np.testing.assert_allclose(tol, [0.75, 1.0, 0.5])
    assert local_tolerance_s([1.0]).tolist() == [math.inf]


# --- Dice ---------------------------------------------------------------------------------


def test_dice_of_overlapping_rectangles_is_analytic():
    pred = np.zeros((1, 40, 40), np.uint8)
    true = np.zeros((1, 40, 40), bool)
    pred[0, 0:20, 0:10] = 255  # 200 px
    true[0, 10:20, 5:25] = True  # 200 px; overlap rows 10-19, cols 5-9 = 50 px
    np.testing.assert_allclose(dice_per_frame(pred, true), [2 * 50 / 400])


@pytest.mark.parametrize(("shift", "expected"), [(0, 1.0), (3, 2 * 7 * 12 / (2 * 120)),
                                                 (10, 0.0)])
def test_dice_of_shifted_rectangle(shift, expected):
    pred = np.zeros((30, 30), bool)
    pred[5:15, 5:17] = True  # 10 x 12
    true = np.roll(pred, shift, axis=0)
    np.testing.assert_allclose(dice_per_frame(pred, true), [expected])


def test_dice_empty_conventions_and_shape_check():
    empty = np.zeros((2, 8, 8))
    full = np.ones((2, 8, 8))
    np.testing.assert_array_equal(dice_per_frame(empty, empty), [1.0, 1.0])
    np.testing.assert_array_equal(dice_per_frame(empty, full), [0.0, 0.0])
    with pytest.raises(ValueError, match="shapes differ"):
        dice_per_frame(empty, np.zeros((2, 8, 9)))


def test_dice_stream_matches_whole_array_with_unequal_chunks():
    rng = np.random.default_rng(0)
    pred = rng.random((23, 9, 7)) > 0.5
    true = rng.random((23, 9, 7)) > 0.5
    expected = dice_per_frame(pred, true)
    got = dice_stream((pred[i : i + 5] for i in range(0, 23, 5)),
                      (true[i : i + 7] for i in range(0, 23, 7)), batch=4)
    np.testing.assert_allclose(got, expected)
    short = dice_stream([pred[:10]], [true])  # the shorter stream sets the length
    np.testing.assert_allclose(short, expected[:10])


# --- compare_beats / summarise_errors ------------------------------------------------------


def test_identical_beats_give_perfect_scores():
    true = truth_beats()
    table = compare_beats(true.copy(), true, FPS)
    assert len(table) == len(true)
    assert table["ed_matched"].all()
    assert table["es_matched"].all()
    s = summarise_errors(table, true, dice=np.ones(50))
    assert s.edes_detection_rate == 1.0
    assert s.n_false_events == 0
    assert s.dice_mean == 1.0
    assert s.dice_p05 == 1.0
    assert s.n_frames_dice == 50
    for name in ("ed_frame_error_mean", "es_frame_error_mean", "edes_frame_error_max",
                 "ed_time_error_frames_mean", "edes_time_error_frames_max",
                 "hr_abs_err_bpm_median", "hr_rel_err_pct_median", "ef_abs_err_median",
                 "fs_minor_abs_err_median", "fs_major_abs_err_median",
                 "edv_rel_err_pct_median", "esv_rel_err_pct_median"):
        assert getattr(s, name) == 0.0, name
    assert (s.n_beats_true, s.n_beats_pred, s.n_events_true) == (6, 6, 12)


def test_shift_by_one_frame_gives_frame_error_exactly_one():
    true = truth_beats()
    table = compare_beats(shifted(true, 1), true, FPS)
    np.testing.assert_array_equal(table["ed_frame_error"], 1.0)
    np.testing.assert_array_equal(table["es_frame_error"], 1.0)
    np.testing.assert_allclose(table["ed_time_error_frames"], 1.0, atol=1e-9)
    s = summarise_errors(table, true)
    assert s.ed_frame_error_mean == 1.0
    assert s.es_frame_error_mean == 1.0
    assert s.edes_frame_error_max == 1.0
    assert s.edes_detection_rate == 1.0
    assert math.isnan(s.dice_mean)  # no masks compared


def test_negative_shift_gives_absolute_error():
    true = truth_beats()
    s = summarise_errors(compare_beats(shifted(true, -2), true, FPS), true)
    assert s.ed_frame_error_mean == 2.0
    assert s.edes_frame_error_max == 2.0


def test_subframe_time_error_in_frames():
    true = truth_beats()
    pred = true.copy()
    pred["ed_time_s"] = pred["ed_time_s"] + 0.3 / FPS  # same integer frame, later refined time
    table = compare_beats(pred, true, FPS)
    np.testing.assert_array_equal(table["ed_frame_error"], 0.0)
    np.testing.assert_allclose(table["ed_time_error_frames"], 0.3, atol=1e-9)
    s = summarise_errors(table, pred)
    np.testing.assert_allclose(s.ed_time_error_frames_mean, 0.3, atol=1e-9)
    assert s.es_time_error_frames_mean == 0.0


def test_missing_predicted_beat_lowers_detection_rate():
    true = truth_beats(n=5)
    pred = true.drop(index=2).reset_index(drop=True)
    pred["beat"] = np.arange(len(pred))
    table = compare_beats(pred, true, FPS)
    np.testing.assert_array_equal(table["ed_matched"], [True, True, False, True, True])
    np.testing.assert_array_equal(table["pred_beat"], [0, 1, -1, 2, 3])
    assert np.isnan(table.loc[2, "ef_pct_pred"])
    s = summarise_errors(table, pred)
    assert s.edes_detection_rate == pytest.approx(8 / 10)
    assert s.ed_detection_rate == pytest.approx(4 / 5)
    assert s.n_false_events == 0
    assert s.n_beats_pred == 4


def test_extra_predicted_beat_counts_false_events():
    true = truth_beats(n=4)
    extra = true.iloc[[1]].copy()  # a spurious beat half a period after beat 1
    extra["ed_time_s"] += 0.4
    extra["es_time_s"] += 0.4
    extra["ed_frame"] += 8
    extra["es_frame"] += 8
    pred = pd.concat([true, extra]).sort_values("ed_time_s").reset_index(drop=True)
    s = summarise_errors(compare_beats(pred, true, FPS), pred)
    assert s.edes_detection_rate == 1.0
    assert s.n_false_events == 2
    assert s.ed_frame_error_mean == 0.0


def test_event_beyond_half_a_beat_is_not_matched():
    true = truth_beats(n=3, period_s=1.0)  # half a beat = 0.5 s = 10 frames
    pred = shifted(true, 11)
    pred["es_frame"] = -1  # predicted beats without ES
    pred["es_time_s"] = np.nan
    table = compare_beats(pred, true, FPS)
    s = summarise_errors(table, pred)
    # ED shifted by 11 frames (> 10) matches nothing; predicted ED k sits 0.55 s after
    # true ED k, i.e. 0.45 s before true ED k+1, within half a beat of it.
    np.testing.assert_array_equal(table["ed_matched"], [False, True, True])
    np.testing.assert_array_equal(table["ed_frame_error"][1:], [-9.0, -9.0])
    assert not table["es_matched"].any()
    assert s.edes_detection_rate == pytest.approx(2 / 6)
    assert s.n_false_events == 1


def test_value_errors_per_beat():
    true = truth_beats()
    pred = true.copy()
    pred["ef_pct"] = pred["ef_pct"] + 2.5
    pred["edv_pl"] = pred["edv_pl"] * 1.1
    pred["hr_bpm"] = pred["hr_bpm"] - 3.0  # true HR is 75 bpm
    s = summarise_errors(compare_beats(pred, true, FPS), pred)
    np.testing.assert_allclose(s.ef_abs_err_median, 2.5)
    np.testing.assert_allclose(s.edv_rel_err_pct_median, 10.0)
    np.testing.assert_allclose(s.hr_abs_err_bpm_median, 3.0)
    np.testing.assert_allclose(s.hr_rel_err_pct_median, 4.0)


def test_compare_uses_frames_when_times_are_missing():
    true = truth_beats()
    pred = shifted(true, 1).drop(columns=["ed_time_s", "es_time_s"])
    table = compare_beats(pred, true, FPS)
    assert table["ed_matched"].all()
    np.testing.assert_array_equal(table["ed_frame_error"], 1.0)


def test_empty_prediction_misses_everything():
    true = truth_beats(n=3)
    pred = true.iloc[:0]
    s = summarise_errors(compare_beats(pred, true, FPS), pred)
    assert s.edes_detection_rate == 0.0
    assert s.n_beats_pred == 0
    assert math.isnan(s.ed_frame_error_mean)


# --- thresholds and the printed table ----------------------------------------------------


def test_thresholds_parse_and_fail():
    true = truth_beats()
    s = summarise_errors(compare_beats(shifted(true, 1), true, FPS), true, dice=[0.8, 1.0])
    under = parse_thresholds("dice_mean=0.95, edes_detection_rate=0.99")
    assert under == {"dice_mean": 0.95, "edes_detection_rate": 0.99}
    over = parse_thresholds("ed_frame_error_mean=0.5,ef_abs_err_median=1")
    failed = failed_thresholds(s, under, over)
    assert [f.split("=")[0] for f in failed] == ["dice_mean", "ed_frame_error_mean"]
    assert failed_thresholds(s, {"dice_mean": 0.9}, {"ed_frame_error_mean": 1.0}) == []
    assert parse_thresholds(None) == {}
    with pytest.raises(ValueError, match="unknown metric 'dice'"):
        parse_thresholds("dice=0.9")
    with pytest.raises(ValueError, match="not a number"):
        parse_thresholds("dice_mean=high")
    assert {"dice_mean", "dice_p05", "edes_detection_rate", "n_false_events"} <= set(METRIC_NAMES)


def test_nan_metric_fails_threshold():
    true = truth_beats()
    s = summarise_errors(compare_beats(true, true, FPS), true)  # no Dice
    assert failed_thresholds(s, {"dice_mean": 0.5}) == ["dice_mean=nan < 0.5"]


def test_paper_table_rows_and_statistics():
    true = truth_beats(n=3)
    table = compare_beats(shifted(true, 1), true, FPS).assign(video="fish1")
    out = paper_table(table)
    assert list(out["video"]) == ["fish1"] * 3 + ["mean", "std", "median", "q1", "q3"]
    assert out.loc[0, "ED frame"] == f"{true.ed_frame[0] + 1} ({true.ed_frame[0]})"
    assert out.loc[0, "HR [bpm]"] == "75.0 (75.0)"
    assert out.loc[2, "HR [bpm]"] == "- (-)"  # last beat: no RR
    assert out.loc[3, "EDV [pl]"] == "2.1 (2.1)"  # mean of 2.0, 2.1, 2.2
