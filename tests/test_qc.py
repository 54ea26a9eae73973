"""QC flags: each fires on an input made to trigger it and stays quiet on a clean one.

Inputs are masks of ellipses whose axes follow a beat law with known ED times (regular, with
skipped beats, drifting, noisy), measured by the real morphometry and cycle detection, and
the phantom generator's exact truth tables with arrhythmia switched on or off.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from skimage.draw import ellipse

from medaka_heart.cardiac import beat_table
from medaka_heart.config import QCConfig, load_config
from medaka_heart.cycles import detect_cycles
from medaka_heart.morphometry import measure_masks
from medaka_heart.qc import (
    assess_quality,
    beat_similarity,
    centroid_travel,
    metrics_from_row,
    quality_flags,
    rate_difference_pct,
    rr_irregularity,
)

FPS = 15.0
PIXEL_UM = 1.5
HR_BPM = 130.0


def regular_ed_times(duration_s: float, hr_bpm: float = HR_BPM, start: float = -0.3) -> np.ndarray:
    return np.arange(start, duration_s + 60 / hr_bpm, 60 / hr_bpm)


def skipped_ed_times(duration_s: float, skip: tuple[int, ...], hr_bpm: float = HR_BPM
                     ) -> np.ndarray:
    """ED times of a regular rhythm in which the beats after ED number `skip` are dropped."""
    rr = np.full(int(duration_s * hr_bpm / 60) + 3, 60 / hr_bpm)
    rr[list(skip)] *= 2.0
    return np.concatenate([[-0.3], -0.3 + np.cumsum(rr)])


def ellipse_masks(ed_times: np.ndarray, n_frames: int, *, shape=(48, 64), a0=16.0, b0=10.0,
                  fa=0.10, fb=0.25, drift_px=0.0, fps=FPS) -> np.ndarray:
    """(T, H, W) masks of a rotated ellipse contracting once between consecutive EDs.

    Semi-axes a0 (1 - fa c) and b0 (1 - fb c) with c = (1 - cos 2 pi phase) / 2. As in a
    heart (and the phantom), systole lasts the same whatever the rhythm: the phase runs from
    0 to 1/2 (ES) over half the usual (median) interval after each ED, and from 1/2 to 1
    over the rest of the interval to the next ED (a dropped beat is one contraction and a
    long filling, its ED unambiguous). The centre moves `drift_px` to the right over the
    video.
    """
    ed = np.asarray(ed_times, dtype=float)
    systole = float(np.median(np.diff(ed))) / 2
    masks = np.zeros((n_frames, *shape), dtype=bool)
    for i in range(n_frames):
        t = i / fps
        k = np.searchsorted(ed, t, side="right") - 1
        tau, filling = t - ed[k], ed[k + 1] - ed[k] - systole
        phase = tau / (2 * systole) if tau < systole else 0.5 + 0.5 * (tau - systole) / filling
        c = 0.5 * (1 - np.cos(2 * np.pi * phase))
        cx = shape[1] / 2 + drift_px * (i / max(1, n_frames - 1) - 0.5)
        rr, cc = ellipse(shape[0] / 2, cx, b0 * (1 - fb * c), a0 * (1 - fa * c), shape=shape,
                         rotation=0.3)
        masks[i, rr, cc] = True
    return masks


def analyse(masks: np.ndarray, *, confidence=None, hr_bpm_intensity=HR_BPM,
            hr_bpm_segmentation=HR_BPM, config: QCConfig | None = None):
    """The pipeline's measurement, cycle detection and QC on a mask stack; its beats stand
    for the fused train, `hr_bpm_segmentation` for the masks' own median rate."""
    frames, _ = measure_masks(masks, PIXEL_UM)
    frames.insert(1, "time_s", frames["frame"] / FPS)
    if confidence is not None:
        frames["confidence"] = confidence
    detection = detect_cycles(frames["volume_pl"].to_numpy(), FPS)
    beats = beat_table(frames, detection)
    return assess_quality(frames, beats, fps=FPS, period_frames=detection.period_frames,
                          hr_bpm_intensity=hr_bpm_intensity,
                          hr_bpm_segmentation_median=hr_bpm_segmentation, config=config)


def names(result) -> list[str]:
    return [f.name for f in result.flags]


@pytest.fixture(scope="module")
def clean_masks() -> np.ndarray:
    return ellipse_masks(regular_ed_times(8.0), 120)


def test_clean_video_raises_nothing(clean_masks):
    qc = analyse(clean_masks, confidence=np.full(120, 0.9))
    assert names(qc) == []
    assert qc.passed
    m = qc.metrics
    assert m.empty_fraction == 0
    assert m.periodicity > 0.95
    assert m.rr_cv_pct < 2
    assert m.skipped_beats == 0
    assert m.motion_diameters < 0.02
    assert m.hr_difference_pct < 1  # the masks' rate given as the law's
    np.testing.assert_allclose(m.confidence, 0.9)
    row = qc.to_dict()
    assert row["qc_pass"] is True
    assert row["qc_flags"] == ""
    assert row["qc_findings"] == ""


def test_empty_masks_without_beats_fail_dimensions_and_rhythm():
    qc = analyse(np.zeros((60, 48, 64), dtype=bool), hr_bpm_intensity=float("nan"),
                 hr_bpm_segmentation=float("nan"))
    assert names(qc) == ["no_heart", "too_few_beats"]  # too_few_measured_beats would repeat it
    assert not qc.passed
    assert not qc.rhythm_passed
    assert not qc.dimensions_passed
    assert qc.to_dict()["qc_flags"] == "no_heart;too_few_beats"


def test_mask_empty_in_many_frames(clean_masks):
    masks = clean_masks.copy()
    masks[30:70] = False  # a third of the video
    qc = analyse(masks)
    assert "empty_masks" in names(qc)
    assert "no_heart" not in names(qc)
    np.testing.assert_allclose(qc.metrics.empty_fraction, 40 / 120)
    masks = clean_masks.copy()
    masks[30:40] = False  # 8%: under the 20% limit
    assert "empty_masks" not in names(analyse(masks))


def test_skipped_beats_are_a_finding_not_a_failure():
    ed = skipped_ed_times(8.0, skip=(4, 10))
    qc = analyse(ellipse_masks(ed, 120))
    assert names(qc) == ["irregular_rhythm"]
    assert qc.passed  # arrhythmia is biology: qc_pass stays True
    assert qc.metrics.skipped_beats == 2
    assert "2 skipped beat(s)" in qc.flags[0].message
    assert qc.to_dict()["qc_findings"] == "irregular_rhythm"
    assert qc.to_dict()["qc_flags"] == ""
    assert qc.metrics.hr_difference_pct < 2  # the median interval ignores the pauses


def test_premature_beats_are_an_irregular_rhythm_without_skipped_beats():
    # every fourth beat premature (0.6 of the period) with a compensatory pause (1.4): the
    # law's RR intervals vary by 33% (CV; at 15 fps the measured ones a little less), none
    # is longer than 1.6x the median
    rr = np.tile([1.0, 1.0, 0.6, 1.4], 6) * 60 / HR_BPM
    ed = np.concatenate([[-0.3], -0.3 + np.cumsum(rr)])
    qc = analyse(ellipse_masks(ed, 120))
    assert names(qc) == ["irregular_rhythm"]
    assert qc.metrics.skipped_beats == 0
    assert 15 < qc.metrics.rr_cv_pct < 40
    assert "RR varies by" in qc.flags[0].message


@pytest.mark.parametrize(("p_arrhythmia", "irregular"), [(0.0, False), (0.4, True)])
def test_phantom_arrhythmia_is_found(p_arrhythmia, irregular):
    from medaka_heart.phantom import make_phantom

    phantom = make_phantom("clean", 3, p_arrhythmia=p_arrhythmia, duration_s=12.0, fps=30.0,
                           hr_bpm=120.0)
    frames = phantom.frame_table()  # exact truth from the outline polygons
    detection = detect_cycles(frames["volume_pl"].to_numpy(), phantom.fps)
    beats = beat_table(frames, detection)
    qc = assess_quality(frames, beats, fps=phantom.fps, period_frames=detection.period_frames)
    assert ("irregular_rhythm" in names(qc)) is irregular
    assert qc.passed  # no measurement problem either way
    law_rr = np.asarray(phantom.meta()["law"]["rr_s"])
    assert bool(law_rr.std() / law_rr.mean() > 0.15) is irregular  # the law is irregular


def test_large_motion(clean_masks):
    moving = ellipse_masks(regular_ed_times(8.0), 120, shape=(48, 96), drift_px=39)
    qc = analyse(moving)
    assert names(qc) == ["large_motion"]
    # a linear drift of D: the 95th percentile distance from the median is 0.95 D / 2, in
    # diameters between those of the ellipse at ED (2 sqrt(16 x 10)) and ES (x 0.9, x 0.75)
    travel = 0.95 * 39 / 2
    ed_diameter, es_diameter = 2 * np.sqrt(16 * 10), 2 * np.sqrt(16 * 0.9 * 10 * 0.75)
    assert travel / ed_diameter - 0.02 < qc.metrics.motion_diameters < travel / es_diameter + 0.02
    slight = ellipse_masks(regular_ed_times(8.0), 120, shape=(48, 96), drift_px=4)
    assert names(analyse(slight)) == []


def test_centroid_travel_in_um_and_diameters():
    n = 101
    frames = pd.DataFrame({"centroid_x_um": np.linspace(0, 100, n), "centroid_y_um": 5.0,
                           "equiv_diameter_um": 40.0})
    travel_um, travel_d = centroid_travel(frames)
    # |x - 50| for x = 0..100 is 0, 1, 1, 2, 2, ..., 50, 50: its 95th percentile (sorted
    # index 0.95 x 100 = 95) is 48
    np.testing.assert_allclose(travel_um, 48.0)
    np.testing.assert_allclose(travel_d, 48.0 / 40)


def test_noisy_volume_has_weak_periodicity(clean_masks):
    rng = np.random.default_rng(1)
    noisy = clean_masks.copy()
    for i in range(len(noisy)):  # segmentation that grows and shrinks at random
        a, b = rng.uniform(8, 18), rng.uniform(5, 12)
        noisy[i] = False
        rr, cc = ellipse(24, 32, b, a, shape=(48, 64), rotation=0.3)
        noisy[i, rr, cc] = True
    qc = analyse(noisy, hr_bpm_intensity=float("nan"))
    assert "weak_periodicity" in names(qc)
    assert qc.metrics.periodicity < 0.5
    assert not qc.passed


def test_beat_similarity_of_known_signals():
    t = np.arange(300)
    period = 20.0
    wave = np.cos(2 * np.pi * t / period)
    np.testing.assert_allclose(beat_similarity(wave, np.arange(0, 300, 20), period), 1.0)
    # one period later the pure wave is still itself even if the EDs are irregular
    ed = np.array([0, 40, 60, 120, 140])
    np.testing.assert_allclose(beat_similarity(wave, ed, period), 1.0)
    noise = np.random.default_rng(0).standard_normal(300)
    assert abs(beat_similarity(noise, np.arange(0, 280, 20), period)) < 0.2
    assert np.isnan(beat_similarity(wave, np.array([0]), period))  # one beat: no pair


def test_rr_irregularity_counts_skipped_beats():
    rr = np.array([0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.79, 0.81, np.nan])
    cv, skipped = rr_irregularity(rr, 1.6)
    assert skipped == 2  # median 0.5: 1.0 and 0.81 are > 1.6 x 0.5, 0.79 is not
    finite = rr[np.isfinite(rr)]
    np.testing.assert_allclose(cv, 100 * finite.std(ddof=1) / finite.mean())


@pytest.mark.parametrize(("factor", "fired"),
                         [(1.3, True), (0.8, True), (1.06, True), (0.94, True), (1.02, False)])
def test_masks_that_beat_at_another_rate_fail_the_dimensions(clean_masks, factor, fired):
    qc = analyse(clean_masks, hr_bpm_segmentation=HR_BPM * factor)
    assert ("hr_mismatch" in names(qc)) is fired
    assert qc.dimensions_passed is not fired
    assert qc.rhythm_passed  # the heart's rhythm is not in question
    np.testing.assert_allclose(qc.metrics.hr_difference_pct, 100 * abs(factor - 1), rtol=0.05,
                               atol=0.1)


@pytest.mark.parametrize(("median_factor", "mean_factor", "fired"),
                         [(1.06, 1.0, False), (1.0, 1.06, False), (1.06, 1.06, True),
                          (0.7, 0.75, True)])
def test_a_mismatch_must_show_in_both_the_median_and_the_mean_rate(clean_masks, median_factor,
                                                                   mean_factor, fired):
    """Long-short alternating intervals put the median on either kind of interval (the median
    rates of two trains of the same beats may then differ by 6 %), a missed beat moves the
    mean: only masks whose rate differs by both beat with something else."""
    frames, _ = measure_masks(clean_masks, PIXEL_UM)
    frames.insert(1, "time_s", frames["frame"] / FPS)
    detection = detect_cycles(frames["volume_pl"].to_numpy(), FPS)
    beats = beat_table(frames, detection)
    hr_median = float(np.median(60.0 / beats["rr_s"].dropna()))
    hr_mean = 60.0 / float(beats["rr_s"].dropna().mean())
    qc = assess_quality(frames, beats, fps=FPS, period_frames=detection.period_frames,
                        hr_bpm_intensity=HR_BPM,
                        hr_bpm_segmentation_median=hr_median * median_factor,
                        hr_bpm_segmentation=hr_mean * mean_factor)
    assert ("hr_mismatch" in names(qc)) is fired
    expected = 100 * min(abs(median_factor - 1), abs(mean_factor - 1))
    np.testing.assert_allclose(qc.metrics.hr_difference_pct, expected, atol=1e-6)


def test_rate_difference_takes_the_smallest_known_difference():
    assert rate_difference_pct((110.0, 100.0), (102.0, 100.0)) == pytest.approx(2.0)
    assert rate_difference_pct((110.0, 100.0), (float("nan"), 100.0)) == pytest.approx(10.0)
    assert np.isnan(rate_difference_pct((float("nan"), 100.0), (90.0, 0.0)))


def test_rhythm_flags_leave_the_dimensions_alone(clean_masks):
    qc = analyse(clean_masks[:12])  # about two beats: too few to trust a rhythm
    assert "too_few_beats" in names(qc)
    assert not qc.rhythm_passed
    assert not qc.passed
    assert qc.to_dict()["qc_rhythm_pass"] is False


def test_missing_cross_check_or_confidence_raises_nothing(clean_masks):
    qc = analyse(clean_masks, hr_bpm_intensity=float("nan"), hr_bpm_segmentation=float("nan"))
    assert names(qc) == []
    assert np.isnan(qc.metrics.hr_difference_pct)
    assert np.isnan(qc.metrics.confidence)


def test_low_segmentation_confidence(clean_masks):
    confidence = np.full(120, 0.95)
    confidence[:80] = 0.3  # uncertain in most frames
    qc = analyse(clean_masks, confidence=confidence)
    assert names(qc) == ["low_confidence"]
    np.testing.assert_allclose(qc.metrics.confidence, 0.3)


@pytest.mark.parametrize(
    ("kwargs", "hr_bpm", "flag"),
    [
        ({}, 45.0, "implausible_hr"),  # slower than medaka's 50 bpm
        ({"fa": 0.2, "fb": 0.7}, HR_BPM, "implausible_ef"),  # EF 1 - 0.3^2 x 0.8 = 93%
        ({"fa": 0.02, "fb": 0.03}, HR_BPM, "implausible_ef"),  # EF about 8%
    ],
)
def test_implausible_rate_and_ejection_fraction(kwargs, hr_bpm, flag):
    n = 240 if hr_bpm < 60 else 120
    masks = ellipse_masks(regular_ed_times(n / FPS, hr_bpm), n, **kwargs)
    qc = analyse(masks, hr_bpm_intensity=hr_bpm, hr_bpm_segmentation=hr_bpm)
    assert names(qc) == [flag]


def test_thresholds_come_from_the_config(tmp_path, clean_masks):
    moving = ellipse_masks(regular_ed_times(8.0), 120, shape=(48, 96), drift_px=39)
    assert names(analyse(moving, config=QCConfig(max_motion_diameters=2.0))) == []
    toml = tmp_path / "qc.toml"
    toml.write_text("[qc]\nhr_min_bpm = 140.0\n")
    config = load_config(toml)
    assert config.qc.hr_min_bpm == 140.0
    assert names(analyse(clean_masks, config=config.qc)) == ["implausible_hr"]


def test_reasons_are_rebuilt_from_a_summary_row():
    qc = analyse(ellipse_masks(skipped_ed_times(8.0, skip=(4,)), 120),
                 confidence=np.full(120, 0.4), hr_bpm_segmentation=100.0)
    assert names(qc) == ["low_confidence", "hr_mismatch", "irregular_rhythm"]
    m = qc.metrics
    row = {**qc.to_dict(), "n_frames": m.n_frames, "n_beats": m.n_beats, "hr_bpm": m.hr_bpm,
           "hr_bpm_median": m.hr_bpm_median, "hr_bpm_intensity": m.hr_bpm_intensity,
           "hr_bpm_segmentation_median": m.hr_bpm_segmentation_median, "ef_pct": m.ef_pct}
    row = pd.read_csv(io.StringIO(pd.DataFrame([row]).to_csv(index=False))).iloc[0]
    assert quality_flags(metrics_from_row(row)) == qc.flags  # through a CSV round trip
