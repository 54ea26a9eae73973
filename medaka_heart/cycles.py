"""Diastole/systole detection on a ventricle size signal (pure numpy/scipy).

End-diastole (ED) is a maximum of the ventricle signal, end-systole (ES) the minimum
that follows it before the next ED. The peak-finding window is derived from the
signal's dominant period, which is searched only inside the plausible heart-rate
range. Extremum times are refined below one frame by fitting a parabola through the
three samples around each extremum.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .config import CycleConfig
from .peaks import find_peaks, prominence_bases

LAST_ES_FALL = 0.85  # share of the median systolic fall that marks an ES on the last frames


@dataclass(frozen=True)
class CycleDetection:
    """Detected beats of one video. Arrays have one entry per beat.

    ed_index, es_index : int frame indices (es_index is -1 where the beat's ES is not seen)
    ed_offset, es_offset : sub-frame refinement in frames, in [-0.5, 0.5]
    rr_s : interval to the next beat in s, by `beat_intervals_s` (NaN for the last beat)
    signal : the gap-filled signal the extrema were read from
    period_frames : dominant period found in the signal (NaN if none)
    ed_sample, es_sample : the frame holding the sampled extremum (largest / smallest value,
        -1 where not seen): values are read around it, whereas ed_index/es_index are the
        frames nearest to the refined times
    """

    fps: float
    ed_index: np.ndarray
    ed_offset: np.ndarray
    es_index: np.ndarray
    es_offset: np.ndarray
    rr_s: np.ndarray
    signal: np.ndarray
    period_frames: float
    ed_sample: np.ndarray
    es_sample: np.ndarray

    @property
    def n_beats(self) -> int:
        return int(self.ed_index.size)

    @property
    def ed_times_s(self) -> np.ndarray:
        return (self.ed_index + self.ed_offset) / self.fps

    @property
    def es_times_s(self) -> np.ndarray:
        """Refined ES times, s; NaN where not seen or not timed (an ES on the first or last
        frame, whose minimum may lie outside the video)."""
        turned = (self.es_sample > 0) & (self.es_sample < self.signal.size - 1)
        return np.where(turned, (self.es_index + self.es_offset) / self.fps, np.nan)


def fill_gaps(signal: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaN samples (edges take the nearest finite value)."""
    x = np.asarray(signal, dtype=float).copy()
    finite = np.isfinite(x)
    if finite.all() or not finite.any():
        return x
    idx = np.arange(x.size)
    x[~finite] = np.interp(idx[~finite], idx[finite], x[finite])
    return x


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation (lag 0 = 1) of the mean-removed signal(s) along the last axis.

    For a (P, T) stack the autocorrelations of the rows are summed before normalising.
    """
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    spectrum = np.fft.rfft(x, 2 * n, axis=-1)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), axis=-1)[..., :n]
    if acf.ndim > 1:
        acf = acf.reshape(-1, n).sum(axis=0)
    return acf / acf[0] if acf[0] > 0 else np.zeros(n)


def period_from_acf(acf: np.ndarray, min_period: float, max_period: float) -> float:
    """Dominant period (samples) from an autocorrelation, searched in [min_period, max_period].

    The first autocorrelation maximum whose interpolated height reaches 70% of the highest
    one in range is taken
    (so a multiple of the period is not chosen) and refined by parabolic interpolation.
    NaN where there is no maximum in range.
    """
    n = acf.size
    lo = max(1, int(np.floor(min_period)))
    hi = min(n - 2, int(np.ceil(max_period)))
    if hi <= lo:
        return float("nan")
    lags = np.arange(lo, hi + 1)
    local_max = (acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] > 0)
    candidates = lags[local_max]
    if candidates.size == 0:
        return float("nan")
    offsets = np.array([parabolic_offset(acf, int(c)) for c in candidates])
    heights = np.array([value_at(acf, int(c), o) for c, o in zip(candidates, offsets, strict=True)])
    first = int(np.flatnonzero(heights >= 0.7 * heights.max())[0])
    return float(candidates[first] + offsets[first])


def dominant_period_frames(signal: np.ndarray, min_period: float, max_period: float) -> float:
    """Dominant period (frames) of a signal, searched in a range; NaN if not periodic there."""
    x = np.asarray(signal, dtype=float)
    if x.size < 4 or np.ptp(x) == 0:
        return float("nan")
    return period_from_acf(autocorrelation(x), min_period, max_period)


def parabolic_offset(y: np.ndarray, i: int) -> float:
    """Sub-sample offset in [-0.5, 0.5] of the extremum of the parabola through y[i-1:i+2].

    0 at the signal's ends or where the three samples are collinear.
    """
    if i <= 0 or i >= len(y) - 1:
        return 0.0
    a, b, c = float(y[i - 1]), float(y[i]), float(y[i + 1])
    curvature = a - 2.0 * b + c
    if curvature == 0 or not np.isfinite(curvature):
        return 0.0
    return float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))


def value_at(y: np.ndarray, i: int, offset: float) -> float:
    """Value at sub-frame position i + offset of the parabola through y[i-1:i+2].

    At the parabola's vertex this is the interpolated extremum; at the signal's ends,
    or where a neighbour is NaN, the sample y[i] itself.
    """
    y = np.asarray(y, dtype=float)
    if i <= 0 or i >= len(y) - 1 or offset == 0:
        return float(y[i])
    a, b, c = y[i - 1], y[i], y[i + 1]
    if not np.all(np.isfinite([a, b, c])):
        return float(b)
    return float(b + offset * (c - a) / 2.0 + offset**2 * (a - 2.0 * b + c) / 2.0)


def refine_by_template(signal: np.ndarray, positions: np.ndarray, period: float, *,
                       maximum: bool, half_window: float = 0.5, iterations: int = 3) -> np.ndarray:
    """Sub-frame extremum positions (frames) refined by aligning every beat to a common template.

    All beats are sampled at different phases, so together they sample the beat's shape
    far finer than one frame ("equivalent-time sampling"): the samples within
    +-half_window periods of each extremum are z-scored, a polynomial template is fitted to
    all of them, each beat's shift against the template is found by least squares, and the
    template's own extremum gives the time. Beats whose window is cut by the video's edge,
    and any that would move by more than one frame, keep their input position; with fewer
    than 4 usable beats the input is returned.
    """
    y = np.asarray(signal, dtype=float)
    pos = np.asarray(positions, dtype=float)
    if pos.size < 4 or not np.isfinite(period):
        return pos
    width = max(1.5, half_window * period)
    grid = np.linspace(-0.6, 0.6, 121)
    refined = pos.copy()
    for _ in range(iterations):
        offsets, values, owner = [], [], []
        for k, centre in enumerate(refined):
            j = np.arange(int(np.ceil(centre - width)), int(np.floor(centre + width)) + 1)
            if j[0] < 0 or j[-1] >= y.size:  # cut by the video's edge
                continue
            spread = y[j].std()
            if not (np.isfinite(spread) and spread > 0):  # flat, or too tiny/huge to z-score
                continue
            offsets.append(j - centre)
            values.append((y[j] - y[j].mean()) / spread)
            owner.append(k)
        if len(owner) < 4:
            return pos
        x_all, z_all = np.concatenate(offsets), np.concatenate(values)
        distinct = np.unique(np.round(x_all, 6)).size
        degree = int(min(8, x_all.size // 6, distinct - 2))
        if degree < 2:
            return pos
        with warnings.catch_warnings():  # a near-singular fit is still a usable template
            warnings.simplefilter("ignore", np.exceptions.RankWarning)
            template = np.polynomial.Polynomial.fit(x_all, z_all, degree)
        fine = template(grid)
        peak = grid[int(np.argmax(fine) if maximum else np.argmin(fine))]
        for k, x, z in zip(owner, offsets, values, strict=True):
            misfit = ((template(x[None, :] - grid[:, None]) - z[None, :]) ** 2).sum(axis=1)
            i = int(np.argmin(misfit))
            refined[k] += grid[i] + parabolic_offset(-misfit, i) * (grid[1] - grid[0]) + peak
    moved = np.abs(refined - pos) > 1.0
    refined[moved] = pos[moved]
    return refined


def _refine(raw: np.ndarray, idx: int, maximum: bool) -> tuple[int, float]:
    """Move idx to the raw extremum among its neighbours, then refine it below a frame."""
    lo, hi = max(0, idx - 1), min(raw.size, idx + 2)
    window = raw[lo:hi]
    best = lo + int(np.argmax(window) if maximum else np.argmin(window))
    return best, parabolic_offset(raw, best)


def detect_cycles(signal: np.ndarray, fps: float, config: CycleConfig | None = None
                  ) -> CycleDetection:
    """Find ED (maxima) and the following ES (minima) in a per-frame ventricle signal.

    Parameters
    ----------
    signal : (T,) float, e.g. volume_pl per frame; NaN where no ventricle was found.
    fps : frames per second.
    config : peak-finding settings and the plausible heart-rate range.

    Beats at the video's edges: an ED whose rise began before the first frame counts when
    the signal falls after it (`edge_peaks`); an ES before the first ED is dropped (its
    diastole was not seen); the last ED keeps its ES if the signal is seen to rise again
    after it, or has fallen by at least LAST_ES_FALL of the median fall of the other beats
    (an ES on the last frames); the last beat has no interval (rr_s NaN).
    """
    config = config or CycleConfig()
    if fps <= 0 or not np.isfinite(fps):
        raise ValueError(f"fps must be positive, got {fps}")
    raw = np.asarray(signal, dtype=float)
    empty = _no_beats(fps, raw)
    if raw.size < 3 or np.mean(~np.isfinite(raw)) > config.max_missing_fraction:
        return empty
    raw = fill_gaps(raw)
    min_period = 60.0 * fps / config.hr_max_bpm
    max_period = 60.0 * fps / config.hr_min_bpm
    period = dominant_period_frames(raw, min_period, max_period)
    if not np.isfinite(period):
        period = float(np.clip(raw.size / 2, min_period, max_period))
    sigma = config.smooth_sigma_periods * period
    smooth = gaussian_filter1d(raw, sigma) if sigma >= 0.3 else raw
    amplitude = np.subtract(*np.percentile(smooth, [95, 5]))
    if amplitude <= 0:
        return _no_beats(fps, raw, period)
    distance = max(1.0, config.min_peak_distance_periods * period)
    prominence = config.min_prominence_fraction * amplitude
    peaks = edge_peaks(smooth, distance, prominence, period)
    if peaks.size == 0:
        return _no_beats(fps, raw, period)

    ed_list: list[int] = []
    ed_off_list: list[float] = []
    es_list: list[int] = []
    es_off_list: list[float] = []
    falls: list[float] = []
    for k, peak in enumerate(peaks):
        ed, ed_off = _refine(raw, int(peak), maximum=True)
        end = int(peaks[k + 1]) if k + 1 < len(peaks) else raw.size
        segment = smooth[peak + 1 : end]
        es, es_off = -1, 0.0
        if segment.size:
            trough = int(peak) + 1 + int(np.argmin(segment))
            fall = smooth[peak] - smooth[trough]
            if k + 1 < len(peaks):
                falls.append(fall)
                es, es_off = _refine(raw, trough, maximum=False)
            else:
                rises_after = smooth[trough:].max() - smooth[trough] >= prominence
                full_fall = bool(falls) and fall >= LAST_ES_FALL * float(np.median(falls))
                if (trough < raw.size - 1 and rises_after) or full_fall:
                    es, es_off = _refine(raw, trough, maximum=False)
        ed_list.append(ed)
        ed_off_list.append(ed_off)
        es_list.append(es)
        es_off_list.append(es_off)

    ed_sample, es_sample = np.asarray(ed_list, dtype=int), np.asarray(es_list, dtype=int)
    ed_index, ed_offset = _template_refined(raw, ed_list, ed_off_list, period, maximum=True)
    es_index, es_offset = _template_refined(raw, es_list, es_off_list, period, maximum=False)
    keep, es_seen = _in_order(ed_index, ed_offset, es_index, es_offset, raw.size)
    ed_index, ed_offset, ed_sample = ed_index[keep], ed_offset[keep], ed_sample[keep]
    es_index = np.where(es_seen, es_index[keep], -1)
    es_offset = np.where(es_seen, es_offset[keep], 0.0)
    es_sample = np.where(es_seen, es_sample[keep], -1)
    found = CycleDetection(float(fps), ed_index, ed_offset, es_index, es_offset,
                           np.full(ed_index.size, np.nan), raw, float(period), ed_sample,
                           es_sample)
    return replace(found, rr_s=beat_intervals_s(found.ed_times_s, found.es_times_s))


def beat_intervals_s(ed_times_s, es_times_s) -> np.ndarray:
    """Interval (s) from each beat to the next; NaN for the last beat.

    Measured between the two beats' end-systoles where both are timed, else between their
    end-diastoles. The ventricle's minimum is a sharp turn while its maximum often lies on a
    flat end-diastolic plateau, so ES times carry less timing noise; per-beat heart rates
    from ES-ES intervals are more precise (measured in the model card).
    ES times are NaN where not seen or not timed (an ES on the video's last frame, whose
    minimum may lie after it).
    """
    ed = np.asarray(ed_times_s, dtype=float)
    es = np.asarray(es_times_s, dtype=float)
    between_es = np.diff(es)
    rr = np.where(np.isfinite(between_es), between_es, np.diff(ed))
    return np.append(rr, np.nan)


def edge_peaks(smooth: np.ndarray, distance: float, prominence: float, period: float
               ) -> np.ndarray:
    """Indices of maxima at least `distance` frames apart that stand out by `prominence`.

    As `scipy.signal.find_peaks` (`peaks.find_peaks`), except near the video's edges: a
    maximum less than a `period` (frames) from the first or last frame, with nothing higher
    between it and that edge, has its fall on that side cut short by the edge (its lowest
    point may lie before the first frame): its other side must fall by `prominence`, the cut
    side must have begun to fall (a quarter of `prominence` per half period, in proportion
    to the frames seen).
    """
    peaks = find_peaks(smooth, distance=distance)
    if peaks.size == 0:
        return peaks
    left, right = prominence_bases(smooth, peaks)
    left_fall, right_fall = smooth[peaks] - smooth[left], smooth[peaks] - smooth[right]
    n = smooth.size
    highest_before = np.maximum.accumulate(smooth)
    highest_after = np.maximum.accumulate(smooth[::-1])[::-1]
    cut_left = (peaks < period) & (highest_before[peaks] <= smooth[peaks])
    cut_right = (peaks > n - 1 - period) & (highest_after[peaks] <= smooth[peaks])
    # the cut side must have begun to fall: a quarter of `prominence` over half a period,
    # in proportion to the frames seen before the edge
    begun = 0.25 * prominence * np.minimum(1.0, np.minimum(peaks, n - 1 - peaks) / (period / 2))
    ok = np.where(cut_left, (right_fall >= prominence) & (left_fall >= begun),
                  np.where(cut_right, (left_fall >= prominence) & (right_fall >= begun),
                           np.minimum(left_fall, right_fall) >= prominence))
    return peaks[ok]


def _template_refined(raw, index, offset, period, *, maximum):
    """(index, offset) arrays after `refine_by_template`; index -1 (not seen) stays as it is."""
    index, offset = np.asarray(index, dtype=int), np.asarray(offset, dtype=float)
    seen = index >= 0
    pos = refine_by_template(raw, index[seen] + offset[seen], period, maximum=maximum)
    pos = np.clip(pos, 0, raw.size - 1)
    index, offset = index.copy(), offset.copy()
    index[seen] = np.round(pos).astype(int)
    offset[seen] = pos - index[seen]
    return index, offset


def _in_order(ed_index, ed_offset, es_index, es_offset, n):
    """(beats to keep, whether each kept beat's ES is seen) so that refined extrema stay in
    order: ED frames strictly increasing, each seen ES strictly after its ED and before the
    next ED (in refined time).

    Refinement moves an extremum by up to a frame, which can swap extrema one frame apart
    (a signal faster than the heart-rate range, a very low frame rate): an ED not after
    the previous one loses its beat, an ES out of place is marked not seen.
    """
    ed_pos = ed_index + ed_offset
    keep = np.zeros(ed_index.size, dtype=bool)
    last = None
    for k in range(ed_index.size):
        if last is None or (ed_index[k] > ed_index[last] and ed_pos[k] > ed_pos[last]):
            keep[k], last = True, k
    ed_pos, es_index, es_pos = ed_pos[keep], es_index[keep], (es_index + es_offset)[keep]
    next_ed = np.append(ed_pos[1:], n)
    es_seen = (es_index >= 0) & (es_pos > ed_pos) & (es_pos < next_ed)
    return keep, es_seen


def _no_beats(fps: float, signal: np.ndarray, period: float = float("nan")) -> CycleDetection:
    empty_i, empty_f = np.empty(0, dtype=int), np.empty(0, dtype=float)
    return CycleDetection(float(fps), empty_i, empty_f, empty_i, empty_f, empty_f,
                          np.asarray(signal, dtype=float), period, empty_i, empty_i)
