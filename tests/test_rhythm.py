"""The fused beat train on videos drawn from exact laws, through the real pipeline.

Each video is a ventricle (and, where said, an atrium beating in antiphase) drawn as dark
ellipses on a noisy background, written as an MJPEG AVI, with masks given. The law's phase
phi(t) fixes every beat: end-systole where phi = pi (mod 2 pi), the rate phi'(t) / 2 pi.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.draw import ellipse

from medaka_heart.config import Config, RhythmConfig
from medaka_heart.options import VideoOptions
from medaka_heart.pipeline import analyze_video
from medaka_heart.rhythm import (
    BOTH,
    INTENSITY,
    SEGMENTATION,
    RhythmChoice,
    choose_rhythm,
    fuse_trains,
    fused_beat_table,
    reference_times,
)

SHAPE = (64, 96)
VENTRICLE, ATRIUM = (32, 32), (32, 60)  # centres (row, col): the chambers touch


class Law:
    """A heart whose rate goes linearly from `bpm0` to `bpm1` over `seconds`."""

    def __init__(self, bpm0: float, bpm1: float, seconds: float, fps: float):
        self.bpm0, self.bpm1, self.seconds, self.fps = bpm0, bpm1, seconds, fps

    def rate_hz(self, t):
        return (self.bpm0 + (self.bpm1 - self.bpm0) * np.asarray(t) / self.seconds) / 60.0

    def phase(self, t):
        t = np.asarray(t, dtype=float)
        slope = (self.bpm1 - self.bpm0) / 60.0 / self.seconds
        return 2 * np.pi * (self.bpm0 / 60.0 * t + slope * t**2 / 2)

    def es_times(self) -> np.ndarray:
        """Times where phi = pi + 2 pi k inside the video (numerically inverted)."""
        t = np.linspace(0, self.seconds, 200_001)
        cycles = (self.phase(t) - np.pi) / (2 * np.pi)
        k = np.arange(np.ceil(cycles[0]), np.floor(cycles[-1]) + 1)
        return np.interp(k, cycles, t)


def contraction(phase) -> np.ndarray:
    """0 at end-diastole, 1 at end-systole; not a sinusoid (harmonics present)."""
    return (0.5 * (1 - np.cos(phase))) ** 1.5


def draw(law: Law, *, atrium: bool = False, alternate: float = 0.0, drift_px: float = 0.0,
         seed: int = 0):
    """(frames (T, H, W) uint8, ventricle masks, union masks of both chambers); the heart
    moves `drift_px` to the right over the video."""
    rng = np.random.default_rng(seed)
    n = round(law.seconds * law.fps)
    t = np.arange(n) / law.fps
    phase = law.phase(t)
    beat = np.floor(phase / (2 * np.pi))  # alternating beats contract by (1 +- alternate)
    c = contraction(phase) * (1 + alternate * np.where(beat % 2 == 0, 1, -1))
    c_atrium = contraction(phase + np.pi)
    frames = rng.normal(150, 3, (n, *SHAPE))
    ventricle = np.zeros((n, *SHAPE), dtype=bool)
    union = np.zeros((n, *SHAPE), dtype=bool)
    for i in range(n):
        shift = drift_px * i / max(1, n - 1)
        rr, cc = ellipse(VENTRICLE[0], VENTRICLE[1] + shift, 12 * (1 - 0.15 * c[i]),
                         16 * (1 - 0.3 * c[i]), shape=SHAPE)
        ventricle[i, rr, cc] = True
        frames[i, rr, cc] -= 60
        union[i] = ventricle[i]
        if atrium:
            ra, ca = ellipse(*ATRIUM, 12 * (1 - 0.15 * c_atrium[i]),
                             16 * (1 - 0.3 * c_atrium[i]), shape=SHAPE)
            union[i, ra, ca] = True
            frames[i, ra, ca] -= 60
    return np.clip(frames, 0, 255).astype(np.uint8), ventricle, union


def write_h264(path, frames: np.ndarray, fps: float):
    """An H.264 MP4 (libx264, yuv420p) as consumer capture programs write, by FFmpeg."""
    import subprocess

    import imageio_ffmpeg  # a test dependency: FFmpeg with libx264, from PyPI

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    h, w = frames.shape[1:3]
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                    "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-crf", "18", str(path)],
                   input=np.ascontiguousarray(frames).tobytes(), check=True)
    return path


def analyse(tmp_path, law: Law, frames: np.ndarray, masks: np.ndarray, *, h264: bool = False):
    if h264:
        video = write_h264(tmp_path / "heart.mp4", frames, law.fps)
    else:
        video = tmp_path / "heart.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), law.fps,
                                 (SHAPE[1], SHAPE[0]), isColor=False)
        for frame in frames:
            writer.write(frame)
        writer.release()
    mask_path = tmp_path / "masks.tif"
    tifffile.imwrite(mask_path, masks.astype(np.uint8) * 255)
    result = analyze_video(video, tmp_path / "out", Config(), VideoOptions(plots=False),
                           masks=mask_path)
    return result, pd.read_csv(tmp_path / "out" / "heart" / "beats.csv")


def beat_rate_errors_pct(law: Law, beats: pd.DataFrame) -> np.ndarray:
    """Per interval: |60 / rr - law rate at the interval's middle| in % of the law."""
    t = beats["beat_time_s"].to_numpy()
    rr = np.diff(t)
    true = 60.0 * law.rate_hz((t[1:] + t[:-1]) / 2)
    return 100 * np.abs(60.0 / rr - true) / true


def check_rate(law: Law, result, beats: pd.DataFrame) -> None:
    """Every true beat in the train (none added), the rate within 0.5 % of the law."""
    true_es = law.es_times()
    assert len(beats) == pytest.approx(true_es.size, abs=1)
    t = beats["beat_time_s"].to_numpy()
    cycles = np.round((law.phase(t[-1]) - law.phase(t[0])) / (2 * np.pi))
    assert cycles == len(beats) - 1  # no beat missed or counted twice
    law_bpm = 60.0 * (law.phase(t[-1]) - law.phase(t[0])) / (2 * np.pi) / (t[-1] - t[0])
    assert result.summary.hr_bpm == pytest.approx(law_bpm, rel=0.005)
    assert np.median(beat_rate_errors_pct(law, beats)) < 0.5


def test_ventricle_with_an_atrium_in_antiphase_is_timed_by_both(tmp_path):
    law = Law(120, 120, 10.0, 20.0)
    frames, ventricle, _ = draw(law, atrium=True)
    result, beats = analyse(tmp_path, law, frames, ventricle)
    check_rate(law, result, beats)
    assert result.rhythm.choice.source == BOTH
    assert set(beats["hr_source"]) == {BOTH}
    assert result.qc.rhythm_passed
    assert result.qc.dimensions_passed


def test_masks_of_both_chambers_do_not_double_the_rate(tmp_path):
    """Both chambers in one outline: its area beats twice per beat (identical chambers in
    antiphase); the pixels of each chamber beat once, so the rate stays the heart's."""
    law = Law(100, 100, 10.0, 25.0)
    frames, _, union = draw(law, atrium=True)
    result, beats = analyse(tmp_path, law, frames, union)
    assert result.rhythm.segmentation_hr_bpm == pytest.approx(200, rel=0.05)  # the trap
    check_rate(law, result, beats)
    assert result.rhythm.choice.source == INTENSITY
    assert set(beats["hr_source"]) == {INTENSITY}
    assert result.qc.rhythm_passed
    assert not result.qc.dimensions_passed  # the masks beat at another rate: hr_mismatch
    assert "hr_mismatch" in [f.name for f in result.qc.problems]


def test_alternating_beats_do_not_halve_the_rate(tmp_path):
    law = Law(110, 110, 10.0, 20.0)
    frames, ventricle, _ = draw(law, alternate=0.3)
    result, beats = analyse(tmp_path, law, frames, ventricle)
    check_rate(law, result, beats)
    assert result.rhythm.choice.source == BOTH
    ef = beats["ef_pct"].to_numpy()[:-1]
    assert np.ptp(ef) > 10  # the alternation is in the volumes, not lost


def test_a_rate_that_drifts_over_a_minute_is_followed(tmp_path):
    law = Law(120, 126, 60.0, 30.0)  # +5 % over a minute
    frames, ventricle, _ = draw(law)
    result, beats = analyse(tmp_path, law, frames, ventricle)
    check_rate(law, result, beats)
    hr = beats["hr_bpm"].to_numpy()
    assert np.nanmedian(hr[-20:]) - np.nanmedian(hr[:20]) == pytest.approx(5.7, abs=1.0)
    assert result.rhythm.choice.source == BOTH


def test_a_minute_of_h264_with_a_drifting_larva_and_rate(tmp_path):
    """The consumer recording: H.264 at 30 fps, 60 s, the larva drifting 8 px, the rate
    +4 % over the minute; the beat train follows the rate, not one smeared spectrum."""
    law = Law(114, 118.5, 60.0, 30.0)
    frames, ventricle, _ = draw(law, drift_px=8.0, seed=3)
    result, beats = analyse(tmp_path, law, frames, ventricle, h264=True)
    assert result.info.n_frames == len(frames)
    check_rate(law, result, beats)
    hr = beats["hr_bpm"].to_numpy()
    assert np.nanmedian(hr[-15:]) - np.nanmedian(hr[:15]) == pytest.approx(4.1, abs=0.8)


def test_beats_over_mask_dropouts_are_timed_by_the_intensity(tmp_path):
    law = Law(130, 130, 10.0, 20.0)
    frames, ventricle, _ = draw(law)
    period = round(20.0 * 60 / 130)
    gone = [3 * period + 2, 7 * period + 2, 11 * period + 2]  # three beats lose their masks
    masks = ventricle.copy()
    for start in gone:
        masks[start : start + period] = False
    result, beats = analyse(tmp_path, law, frames, masks)
    check_rate(law, result, beats)
    sources = beats["hr_source"].to_numpy()
    assert result.rhythm.choice.source == BOTH
    assert 2 <= np.sum(sources == INTENSITY) <= 6  # the beats in the gaps (and at their edges)
    assert np.sum(sources == BOTH) >= len(beats) - 6
    gap_beats = beats[sources == INTENSITY]
    assert (gap_beats["ed_frame"] == -1).all()
    assert gap_beats["ef_pct"].isna().all()


def test_fusion_fills_gaps_and_puts_both_signals_on_one_reference():
    period = 0.5
    seg = np.array([0.10, 0.60, 1.10, 2.10, 2.60])  # the beat at 1.60 is missing
    intensity = np.arange(6) * period + 0.10 - 0.07  # every beat, 0.07 s early
    choice = RhythmChoice(10.0, True, True)
    train = fuse_trains(seg, np.ones(5, bool), intensity, period, choice)
    np.testing.assert_allclose(train.times_s, [0.10, 0.60, 1.10, 1.60, 2.10, 2.60], atol=1e-9)
    assert list(train.source) == [BOTH, BOTH, BOTH, INTENSITY, BOTH, BOTH]
    assert list(train.segmentation_beat) == [0, 1, 2, -1, 3, 4]


def test_fusion_uses_only_the_signals_chosen():
    seg, intensity = np.array([0.1, 0.6, 1.1]), np.array([0.3, 0.8, 1.3])
    alone = fuse_trains(seg, np.ones(3, bool), intensity, 0.5, RhythmChoice(10, True, False))
    assert list(alone.source) == [SEGMENTATION] * 3
    over_a_dropout = fuse_trains(seg, np.array([True, False, True]), intensity, 0.5,
                                 RhythmChoice(10, True, False))
    np.testing.assert_allclose(over_a_dropout.times_s, seg)  # nothing else to time it
    model_free = fuse_trains(seg, np.ones(3, bool), intensity, 0.5,
                             RhythmChoice(10, False, True))
    np.testing.assert_allclose(model_free.times_s, intensity)
    assert list(model_free.source) == [INTENSITY] * 3


def test_reference_times_put_eds_on_the_end_systolic_reference():
    ed = np.array([0.0, 1.0, 2.0, 3.0])
    es = np.array([0.3, np.nan, 2.3, 3.3])
    np.testing.assert_allclose(reference_times(ed, es), [0.3, 1.3, 2.3, 3.3])
    assert np.isnan(reference_times(ed, es, duration_s=3.2)[-1])  # after the last frame


def test_the_agreement_tolerance_comes_from_the_config(tmp_path):
    """Masks 3 % slower than the model-free beat: used at the default 5 %, not at 2 %."""
    from medaka_heart.beat_signal import IntensityBeats
    from medaka_heart.config import load_config

    acf = np.cos(2 * np.pi * np.arange(200) / 10.0)  # pixels that repeat every 10 frames
    intensity = IntensityBeats(120.0, 0.9, 10.0, np.zeros((2, 2), bool), np.zeros(200), acf)
    masks_rr = np.full(12, 10.3)
    toml = tmp_path / "r.toml"
    toml.write_text("[rhythm]\nagreement_pct = 2.0\n")
    for config, used in ((RhythmConfig(), True), (load_config(toml).rhythm, False)):
        choice = choose_rhythm(intensity, acf, masks_rr, True, 20.0, (40.0, 300.0), config)
        assert choice.period_frames == pytest.approx(10.0)
        assert choice.use_segmentation is used


def test_a_clip_of_one_beat_takes_the_shared_period():
    from medaka_heart.beat_signal import IntensityBeats
    from medaka_heart.rhythm import VideoRhythm

    beats = fused_beat_table(pd.DataFrame(columns=["beat", "ed_frame", "es_frame", "rr_s",
                                                   "ef_pct", "hr_bpm", "edv_pl", "esv_pl",
                                                   "sv_pl", "fs_minor_pct", "fs_major_pct",
                                                   "fac_pct"]),
                             fuse_trains([], [], [0.4], 0.5, RhythmChoice(7.5, False, True)))
    none = IntensityBeats(np.nan, 0.0, np.nan, np.zeros((1, 1), bool), np.zeros(3), np.zeros(3))
    rhythm = VideoRhythm(beats, RhythmChoice(7.5, False, True), none, np.nan, np.nan, np.nan, 15.0)
    assert len(beats) == 1
    assert rhythm.summary().hr_bpm == pytest.approx(60 * 15.0 / 7.5)


def test_the_steadier_signal_times_the_beats_both_see():
    """Masks that wobble by +-0.1 periods (a beat of 5 frames): the intensity's times win."""
    period = 0.5
    true = np.arange(12) * period + 0.2
    wobble = np.where(np.arange(12) % 2, 0.05, -0.05)
    seg, intensity = true + wobble, true - 0.1  # the intensity: steady, another phase
    train = fuse_trains(seg, np.ones(12, bool), intensity, period, RhythmChoice(10, True, True))
    assert list(train.source) == [BOTH] * 12
    np.testing.assert_allclose(np.diff(train.times_s), period, atol=1e-9)
    steady = fuse_trains(true, np.ones(12, bool), intensity + wobble, period,
                         RhythmChoice(10, True, True))
    np.testing.assert_allclose(steady.times_s, true)  # steady masks keep their own times


def test_signals_that_jitter_alike_time_the_beats_both_see_together():
    """Masks and intensity that wobble alike (jitter 0.24 and 0.16 of a period): each shared
    beat is timed by the mean of the two, after the intensity is put on the masks' ES
    reference (here 0.1 s later)."""
    period = 0.5
    true = np.arange(12) * period + 0.2
    sign = np.where(np.arange(12) % 2, 1.0, -1.0)
    seg, intensity = true + 0.03 * sign, true - 0.1 - 0.02 * sign
    train = fuse_trains(seg, np.ones(12, bool), intensity, period, RhythmChoice(10, True, True))
    assert list(train.source) == [BOTH] * 12
    np.testing.assert_allclose(train.times_s, true + 0.005 * sign, atol=1e-9)


def test_where_both_time_a_masks_beat_outranks_a_nearby_intensity_beat():
    """Signals that jitter alike each see a beat the other does not, 0.2 s (0.4 periods)
    apart: one beat, not two; the masks' stays (they time the shared beats with the
    intensity, and their own beats come first)."""
    period = 0.5
    true = np.arange(10) * period + 0.2
    sign = np.where(np.arange(10) % 2, 1.0, -1.0)
    seg, intensity = true + 0.03 * sign, true - 0.02 * sign
    seg = np.append(seg, 5.1)  # beyond the intensity's last beat ...
    intensity = np.append(intensity, 5.3)  # ... and its own beat 0.2 s later
    train = fuse_trains(seg, np.ones(seg.size, bool), intensity, period,
                        RhythmChoice(10, True, True))
    assert list(train.source) == [BOTH] * 10 + [SEGMENTATION]
    assert train.times_s[-1] == pytest.approx(5.1)


def test_shared_timer():
    from medaka_heart.rhythm import shared_timer

    assert shared_timer(0.01, 0.1) == SEGMENTATION
    assert shared_timer(0.1, 0.01) == INTENSITY
    assert shared_timer(0.05, 0.06) == BOTH
    assert shared_timer(np.nan, 0.05) == INTENSITY  # the masks' jitter cannot be told
    assert shared_timer(0.05, np.nan) == SEGMENTATION
    assert shared_timer(np.nan, np.nan) == SEGMENTATION


def test_masks_whose_jitter_cannot_be_told_do_not_time_a_steady_intensity():
    """Four mask beats, one early and one missed (too few whole intervals to measure their
    jitter), against four steady model-free beats (the zebrafish close-up): the intensity
    times the beats, and the early mask beat, near one of them, is dropped."""
    period = 0.792
    seg = np.array([0.797, 1.372, 2.590, 3.381])
    intensity = np.array([0.747, 1.568, 2.337, 3.152])
    train = fuse_trains(seg, np.ones(4, bool), intensity, period, RhythmChoice(23.7, True, True))
    assert len(train.times_s) == 4
    assert np.median(np.diff(train.times_s)) == pytest.approx(np.median(np.diff(intensity)))
    assert SEGMENTATION not in list(train.source)
    # both unmeasurable (a clip of three beats each): the masks' times, as before
    clip = fuse_trains(seg[:3], np.ones(3, bool), intensity[:3], period,
                       RhythmChoice(23.7, True, True))
    assert set(clip.times_s) <= set(seg)


def test_timing_jitter():
    from medaka_heart.rhythm import timing_jitter

    assert timing_jitter(np.arange(10) * 0.5) == pytest.approx(0.0)
    assert timing_jitter(np.delete(np.arange(10) * 0.5, 4)) == pytest.approx(0.0)  # a miss
    wobbly = np.arange(10) * 0.5 + np.where(np.arange(10) % 2, 0.05, -0.05)
    assert timing_jitter(wobbly) == pytest.approx(0.2 / 0.6)  # intervals 0.6, 0.4, 0.6, ...
    assert np.isnan(timing_jitter([0.0, 0.5, 1.0]))
