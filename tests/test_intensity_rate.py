import numpy as np
import pytest

from medaka_heart.intensity_rate import beat_power_map, intensity_heart_rate


def beating_thumbs(fps, hr, seconds=8.0, seed=0, h=36, w=48):
    """Noise, flicker and drift everywhere; a 6x6 patch darkens with a non-sinusoidal beat."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    t = np.arange(n) / fps
    phase = 2 * np.pi * hr / 60 * t
    beat = np.maximum(0, np.sin(phase)) ** 3 + 0.2 * np.sin(2 * phase)  # harmonics present
    thumbs = rng.normal(100, 2, (n, h, w))
    thumbs += 5 * rng.normal(size=n)[:, None, None]  # illumination flicker
    thumbs += np.linspace(0, 20, n)[:, None, None] * np.linspace(0, 1, w)[None, None, :]  # drift
    thumbs[:, 10:16, 20:26] -= 15 * beat[:, None, None]
    return thumbs


@pytest.mark.parametrize(("fps", "hr"), [(15, 130), (30, 90), (12.9, 170), (20, 60), (60, 240)])
def test_recovers_heart_rate_within_2_percent(fps, hr):
    result = intensity_heart_rate(beating_thumbs(fps, hr), fps)
    assert result.hr_bpm == pytest.approx(hr, rel=0.02)
    assert result.periodicity > 0.5
    assert result.region[10:16, 20:26].mean() > 0.5  # found the beating patch


def test_noise_has_weak_periodicity():
    rng = np.random.default_rng(3)
    result = intensity_heart_rate(rng.normal(100, 2, (150, 36, 48)), 15)
    assert result.periodicity < 0.5 or np.isnan(result.hr_bpm)


def test_too_short_gives_nan():
    assert np.isnan(intensity_heart_rate(np.zeros((4, 8, 8)), 15).hr_bpm)


@pytest.mark.parametrize(("fps", "hr"), [(15, 130), (12.9, 170), (30, 60)])
def test_beat_power_map_is_highest_on_the_beating_patch(fps, hr):
    thumbs = beating_thumbs(fps, hr, seconds=3.0)
    n = len(thumbs)
    thumbs[:, 25:31, 5:11] += np.linspace(0, 60, n)[:, None, None]  # a patch that drifts
    beat = beat_power_map(thumbs, fps)
    assert beat.shape == thumbs.shape[1:]
    assert beat.max() == pytest.approx(1.0)
    assert beat[10:16, 20:26].min() > 0.4  # the whole beating patch
    outside = np.ones(beat.shape, bool)
    outside[10:16, 20:26] = False
    assert beat[outside].max() < 0.35  # noise (sd 2 against a beat of 15): flicker and
    assert beat[25:31, 5:11].max() < 0.35  # drift add nothing to it
    assert np.median(beat[10:16, 20:26]) > 2.5 * np.percentile(beat[outside], 99)


def test_beat_power_map_of_a_still_video_is_zero():
    np.testing.assert_array_equal(beat_power_map(np.full((40, 8, 8), 7.0), 20.0), 0.0)
