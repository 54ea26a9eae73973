"""The model-free beat signal of a video: what beats in its thumbnails, as one trace (pure).

Independent of the segmentation, as HeartBeat- and HeartCV-style tools do it, but giving
beat *times*, not only a rate:

1. every thumbnail pixel loses the whole-frame flicker and what changes slower than the
   slowest heart rate (drift);
2. the pixels whose intensity varies most inside the plausible heart-rate band (over the
   first `REGION_FRAMES` frames) are the beating region;
3. the trace is the region's first principal component (z-scored), the common beat of its
   pixels whatever their sign (two chambers beating in antiphase add up to one beat);
4. the rate is the highest peak of their summed power spectrum; its octave (that rate, half
   or twice it) is the shortest period that is supported: where the pixels' summed
   autocorrelation reaches `OCTAVE_SHARE` of the best candidate's, or where the trace
   shows a beat every period (`beats_every`: a contraction counted in every period, as
   many as the period allows). Pixel by pixel, two chambers beating out of phase each
   repeat only once per beat, so they do not double the rate; beats that differ from one
   to the next (alternating, or a loop of two unlike beats) repeat better every second
   beat, but are still counted one by one, so they do not halve it;
5. its beats are found by `cycles.detect_cycles` inside a narrow band around the rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .config import CycleConfig
from .cycles import CycleDetection, autocorrelation, detect_cycles, parabolic_offset, value_at
from .intensity_rate import acf_periodicity, beating_pixels, detrended_pixels, spectral_peak_hz

REGION_FRAMES = 2048  # frames the beating region is chosen on (it is then followed in all)
TOP_FRACTION = 0.03  # share of the thumbnail's pixels that form the beating region
OCTAVE_SHARE = 0.7  # a shorter period wins when its autocorrelation reaches this share
BAND = (0.7, 1.4)  # beats are searched between these multiples of the chosen rate
COUNT_SHARE = 0.8  # `beats_every`: share of the intervals within COUNT_RANGE of the period
COUNT_RANGE = (0.6, 1.5)


@dataclass(frozen=True)
class IntensityBeats:
    """The model-free beat signal of one video.

    hr_bpm : heart rate from the intensity alone (NaN where nothing beats).
    periodicity : the region pixels' summed autocorrelation at the period, 0-1.
    period_frames : 60 fps / hr_bpm (NaN where nothing beats).
    region : (h, w) bool, the thumbnail pixels that beat most.
    trace : (T,) float, the region's common beat (z-scored; NaN where no trace).
    pixel_acf : (T,) summed autocorrelation of the region's pixels (lag in frames).
    """

    hr_bpm: float
    periodicity: float
    period_frames: float
    region: np.ndarray
    trace: np.ndarray
    pixel_acf: np.ndarray


def acf_near(acf: np.ndarray, lag: float, tolerance: float = 0.06) -> float:
    """Highest autocorrelation within lag * (1 +- tolerance), interpolated; NaN out of range."""
    lo = max(1, int(np.floor(lag * (1 - tolerance))))
    hi = min(acf.size - 2, int(np.ceil(lag * (1 + tolerance))))
    if hi < lo:
        return float("nan")
    best = max(float(value_at(acf, i, parabolic_offset(acf, i))) for i in range(lo, hi + 1))
    return float(min(best, 1.0))


def octave_candidates(period: float, min_period: float, max_period: float) -> list[float]:
    """`period`, half and twice it, those inside [min_period, max_period], shortest first."""
    return [p for p in (period / 2, period, 2 * period) if min_period <= p <= max_period]


def shortest_supported(candidates: list[float], scores: list[float],
                       share: float = OCTAVE_SHARE) -> float:
    """The shortest candidate period whose score reaches `share` of the best one (NaN if none)."""
    finite = [s for s in scores if np.isfinite(s)]
    if not finite or max(finite) <= 0:
        return float("nan")
    best = max(finite)
    for period, score in zip(candidates, scores, strict=True):
        if np.isfinite(score) and score >= share * best:
            return period
    return float("nan")


def intensity_beats(thumbs: np.ndarray, fps: float, hr_min_bpm: float = CycleConfig.hr_min_bpm,
                    hr_max_bpm: float = CycleConfig.hr_max_bpm) -> IntensityBeats:
    """The model-free beat signal of (T, h, w) grayscale thumbnails at `fps` frames per s."""
    thumbs = np.asarray(thumbs, dtype=np.float32)
    t, h, w = thumbs.shape
    min_period, max_period = 60.0 * fps / hr_max_bpm, 60.0 * fps / hr_min_bpm
    nothing = IntensityBeats(float("nan"), 0.0, float("nan"), np.zeros((h, w), dtype=bool),
                             np.full(t, np.nan), np.zeros(t))
    if t < max(8, 2 * min_period + 2):
        return nothing
    signals = detrended_pixels(thumbs, fps, hr_min_bpm)
    low_hz, high_hz = hr_min_bpm / 60.0, hr_max_bpm / 60.0
    keep = beating_pixels(signals[:, :REGION_FRAMES], fps, low_hz, high_hz, TOP_FRACTION)
    region = np.zeros(h * w, dtype=bool)
    region[keep] = True
    pixels = signals[keep].astype(float)
    f = spectral_peak_hz(pixels, fps, low_hz, high_hz, subharmonic_check=False)
    acf = autocorrelation(pixels)
    if not np.isfinite(f) or f <= 0:
        return dataclasses.replace(nothing, region=region.reshape(h, w), pixel_acf=acf)
    candidates = octave_candidates(fps / f, min_period, max_period)
    period = shortest_supported(candidates, [acf_near(acf, p) for p in candidates])
    if not np.isfinite(period):
        period = fps / f
    trace = principal_trace(pixels)
    shorter = [p for p in candidates if p < period and beats_every(trace, fps, p)]
    period = min(shorter, default=period)
    return IntensityBeats(
        hr_bpm=60.0 * fps / period,
        periodicity=acf_periodicity(acf, period),
        period_frames=float(period),
        region=region.reshape(h, w),
        trace=trace,
        pixel_acf=acf,
    )


def beats_every(trace: np.ndarray, fps: float, period_frames: float) -> bool:
    """Whether the (T,) trace beats once in every `period_frames`: its beats near that period
    (`trace_beats`) are spaced within COUNT_RANGE periods in at least COUNT_SHARE of their
    intervals, over at least two intervals. A trace that beats every second period has its
    beats two periods apart."""
    found = trace_beats(trace, fps, period_frames)
    spacing = np.diff(found.ed_times_s) * fps / period_frames
    if spacing.size < 2:
        return False
    inside = (spacing >= COUNT_RANGE[0]) & (spacing <= COUNT_RANGE[1])
    return bool(inside.mean() >= COUNT_SHARE)


def principal_trace(pixels: np.ndarray) -> np.ndarray:
    """First principal component over time of (P, T) pixel signals, z-scored.

    Its sign is set so that its sharper extremum is a minimum (negative skew), as the
    ventricle's volume, whose end-systole is a sharp turn.
    """
    x = pixels - pixels.mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    trace = vt[0]
    spread = trace.std()
    if not spread > 0:
        return np.zeros_like(trace)
    trace = (trace - trace.mean()) / spread
    return -trace if np.mean(trace**3) > 0 else trace


def trace_beats(trace: np.ndarray, fps: float, period_frames: float,
                config: CycleConfig | None = None) -> CycleDetection:
    """Beats of a beat trace whose period is known to be near `period_frames` (`BAND`).

    `cycles.detect_cycles` with the heart-rate range narrowed around that period, so that
    harmonics of the trace cannot be taken for beats; its "ED" are the trace's maxima.
    """
    rate = 60.0 * fps / period_frames
    config = dataclasses.replace(config or CycleConfig(), hr_min_bpm=BAND[0] * rate,
                                 hr_max_bpm=BAND[1] * rate)
    return detect_cycles(trace, fps, config)
