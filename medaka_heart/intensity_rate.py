"""Model-free heart rate from the periodic change of pixel intensities (pure numpy).

Independent of the segmentation, as HeartBeat- and HeartCV-style tools do it: on small
grayscale thumbnails of the video, the pixels whose intensity varies most inside the
plausible heart-rate band are taken as the heart region, and the heart rate is the
fundamental of their summed power spectrum. Their summed autocorrelation at that period
measures how periodic the beat is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from .config import CycleConfig
from .cycles import autocorrelation, parabolic_offset, value_at


@dataclass(frozen=True)
class IntensityRate:
    """hr_bpm: NaN if no periodicity; periodicity: summed autocorrelation at the period (0-1);
    region: (h, w) bool thumbnail pixels used."""

    hr_bpm: float
    periodicity: float
    region: np.ndarray


def band_power(signals: np.ndarray, fps: float, low_hz: float, high_hz: float) -> np.ndarray:
    """Power of each row of (P, T) signals inside [low_hz, high_hz]."""
    spectrum = np.abs(np.fft.rfft(signals, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(signals.shape[-1], d=1.0 / fps)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    return spectrum[:, band].sum(axis=-1)


def detrended_pixels(thumbs: np.ndarray, fps: float, hr_min_bpm: float) -> np.ndarray:
    """(T, h, w) thumbnails -> (P, T) float32 pixel signals without the whole-frame flicker
    (each frame's mean) and what changes slower than the slowest heart rate (a moving mean
    over its period)."""
    thumbs = np.asarray(thumbs, dtype=np.float32)
    x = thumbs.reshape(thumbs.shape[0], -1)
    x = x - x.mean(axis=1, keepdims=True)
    slowest = max(3, int(np.ceil(60.0 * fps / hr_min_bpm)))
    return (x - uniform_filter1d(x, size=slowest, axis=0, mode="nearest")).T


def beating_pixels(signals: np.ndarray, fps: float, low_hz: float, high_hz: float,
                   top_fraction: float = 0.03) -> np.ndarray:
    """Indices of the (P, T) signals that vary most inside [low_hz, high_hz]: the
    `top_fraction` of them (at least 4), the heart region."""
    power = band_power(signals, fps, low_hz, high_hz)
    return np.argsort(power)[-max(4, int(top_fraction * power.size)):]


def beat_power_map(thumbs: np.ndarray, fps: float, hr_min_bpm: float = CycleConfig.hr_min_bpm,
                   hr_max_bpm: float = CycleConfig.hr_max_bpm) -> np.ndarray:
    """How strongly each pixel of (T, h, w) thumbnails varies at heart-rate frequencies.

    Whole-frame flicker and changes slower than the slowest heart rate (drift) are removed
    first, as in `intensity_heart_rate`, and a Hann window tapers the ends; returns the (h, w)
    power inside [hr_min_bpm,
    hr_max_bpm] (up to the Nyquist frequency) divided by its largest value (0 everywhere if
    nothing varies). The heart, usually the strongest periodic change in view, is near 1.
    """
    t, h, w = np.shape(thumbs)
    x = detrended_pixels(thumbs, fps, hr_min_bpm)
    x *= np.hanning(t).astype(np.float32)[None, :]  # no leakage from what is left of drift
    power = band_power(x, fps, hr_min_bpm / 60.0, min(hr_max_bpm / 60.0, fps / 2.0))
    top = float(power.max())
    return (power / top if top > 0 else power).reshape(h, w).astype(np.float32)


def spectral_peak_hz(signals: np.ndarray, fps: float, low_hz: float, high_hz: float, *,
                     subharmonic_check: bool = True) -> float:
    """Fundamental frequency (Hz) of (P, T) signals from their summed, zero-padded power spectrum.

    The highest peak in [low_hz, high_hz] is refined by a parabola on the log power; with
    `subharmonic_check`, if the spectrum has a peak at half that frequency with at least a
    quarter of its power, the half frequency is the fundamental and the first peak its
    harmonic (`beat_signal` decides the octave by autocorrelation instead).
    """
    t = signals.shape[-1]
    nfft = 1 << int(np.ceil(np.log2(8 * t)))
    window = np.hanning(t)
    power = (np.abs(np.fft.rfft(signals * window, nfft, axis=-1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(nfft, d=1.0 / fps)
    band = np.flatnonzero((freqs >= low_hz) & (freqs <= high_hz))
    if band.size < 3 or power[band].max() <= 0:
        return float("nan")
    log_power = np.log(power + power.max() * 1e-12)

    def peak_near(lo: int, hi: int) -> tuple[float, float]:
        i = lo + int(np.argmax(power[lo:hi]))
        return (i + parabolic_offset(log_power, i)) * fps / nfft, float(power[i])

    f, p = peak_near(band[0], band[-1] + 1)
    half = int(round(f / 2 * nfft / fps))
    width = max(2, int(round(0.1 * half)))
    if subharmonic_check and half - width >= band[0]:
        f_half, p_half = peak_near(half - width, half + width + 1)
        if p_half >= 0.25 * p:
            f = f_half
    return f


def intensity_heart_rate(
    thumbs: np.ndarray,
    fps: float,
    hr_min_bpm: float = CycleConfig.hr_min_bpm,
    hr_max_bpm: float = CycleConfig.hr_max_bpm,
    top_fraction: float = 0.03,
) -> IntensityRate:
    """Heart rate in bpm from (T, h, w) grayscale thumbnails at `fps` frames per second."""
    thumbs = np.asarray(thumbs, dtype=np.float32)
    t, h, w = thumbs.shape
    empty = IntensityRate(float("nan"), 0.0, np.zeros((h, w), dtype=bool))
    min_period = 60.0 * fps / hr_max_bpm
    if t < max(8, 2 * min_period + 2):
        return empty
    signals = detrended_pixels(thumbs, fps, hr_min_bpm)  # (pixels, T)
    low_hz, high_hz = hr_min_bpm / 60.0, hr_max_bpm / 60.0
    keep = beating_pixels(signals, fps, low_hz, high_hz, top_fraction)
    region = np.zeros(h * w, dtype=bool)
    region[keep] = True
    f = spectral_peak_hz(signals[keep], fps, low_hz, high_hz)
    if not np.isfinite(f) or f <= 0:
        return IntensityRate(float("nan"), 0.0, region.reshape(h, w))
    periodicity = acf_periodicity(autocorrelation(signals[keep]), fps / f)
    return IntensityRate(60.0 * f, periodicity, region.reshape(h, w))


def acf_periodicity(acf: np.ndarray, period: float, multiples: int = 3) -> float:
    """Highest autocorrelation at 1, 2, ... `multiples` periods (interpolated), clipped to [0, 1].

    Several multiples are looked at because a period of few frames that falls between two
    samples is under-read at lag 1 x period.
    """
    best = 0.0
    for k in range(1, multiples + 1):
        lag = k * period
        i = int(np.floor(lag))
        if i + 1 >= acf.size - 1:
            break
        best = max(best, float(value_at(acf, i, lag - i)), float(value_at(acf, i + 1, lag - i - 1)))
    return float(np.clip(best, 0.0, 1.0))
