"""One beat train per video from two independent beat signals (pure numpy/pandas).

The ventricle's volume signal (from the masks, `cycles.detect_cycles`) times each beat's
end-diastole and end-systole below one frame, but only where the masks follow the
ventricle. The model-free beat trace (`beat_signal`) beats wherever the heart does, whatever
was segmented. `choose_rhythm` settles the period from both; `fuse_trains` builds the beat
train: beats both signals see take the clearly steadier signal's timing, or the mean of the
two (`both`), beats only one signal sees fill the other's gaps (`intensity`,
`segmentation`), and a signal that does not beat at the chosen rate is not used at all.
Every beat time is put on one reference, the end-systole (the ventricle's sharp turn), so
that intervals between beats of either source are comparable. `VideoRhythm.summary` gives
the video's rhythm numbers from the fused train.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .beat_signal import (
    IntensityBeats,
    acf_near,
    intensity_beats,
    octave_candidates,
    shortest_supported,
    trace_beats,
)
from .cardiac import BeatSummary, summarise_beats
from .config import CycleConfig, RhythmConfig
from .cycles import CycleDetection, autocorrelation, fill_gaps
from .qc import beat_similarity

BOTH, SEGMENTATION, INTENSITY = "both", "segmentation", "intensity"
MATCH_PERIODS = 0.3  # two beats within this share of a period are the same beat
GAP_PERIODS = 0.6  # a beat of one signal fills a gap of the other only this far from any beat
STEADIER = 0.5  # a signal times shared beats alone when its jitter is under this x the other's


@dataclass(frozen=True)
class RhythmChoice:
    """The video's period and which beat signals beat at it.

    period_frames : the chosen beat period (NaN where neither signal beats).
    use_segmentation, use_intensity : whether each signal's beats go into the train.
    """

    period_frames: float
    use_segmentation: bool
    use_intensity: bool

    @property
    def source(self) -> str:
        """`both`, `segmentation` or `intensity`: what the video's beat train rests on."""
        if self.use_segmentation and self.use_intensity:
            return BOTH
        return SEGMENTATION if self.use_segmentation else INTENSITY


@dataclass(frozen=True)
class BeatTrain:
    """The fused beats of one video, in time order.

    times_s : (n,) beat times on the end-systolic reference, s.
    source : (n,) str, which signal timed each beat (`both`, `segmentation`, `intensity`).
    segmentation_beat : (n,) int, the row of the volume signal's beat table (-1: none).
    """

    times_s: np.ndarray
    source: np.ndarray
    segmentation_beat: np.ndarray

    @property
    def rr_s(self) -> np.ndarray:
        """Interval from each beat to the next, s; NaN for the last."""
        if self.times_s.size == 0:
            return np.empty(0)
        return np.append(np.diff(self.times_s), np.nan)


def reference_times(ed_times_s, es_times_s, duration_s: float = np.inf) -> np.ndarray:
    """Beat times on the end-systolic reference: the ES where timed, else the ED shifted by
    the median ED-to-ES delay of the beats that have both (the ED itself if none do); NaN
    where that lands after `duration_s` (the time of the last frame, s)."""
    ed = np.asarray(ed_times_s, dtype=float)
    es = np.asarray(es_times_s, dtype=float)
    both = np.isfinite(ed) & np.isfinite(es)
    delay = float(np.median(es[both] - ed[both])) if both.any() else 0.0
    times = np.where(np.isfinite(es), es, ed + delay)
    return np.where(times <= duration_s, times, np.nan)


def in_phase(trace: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """The (T',) intensity trace, its sign turned where it falls as the (T,) volume rises, so
    that its minima are the ventricle's end-systoles (the intensity then times the same event
    as the masks, whatever the rhythm)."""
    v = np.asarray(volume, dtype=float)[: trace.size]
    ok = np.isfinite(v) & np.isfinite(trace)
    if ok.sum() < 3 or np.ptp(v[ok]) == 0 or np.ptp(trace[ok]) == 0:
        return trace
    return -trace if np.corrcoef(trace[ok], v[ok])[0, 1] < 0 else trace


def segmentation_acf(signal: np.ndarray) -> np.ndarray:
    """Autocorrelation of a (T,) ventricle signal, gaps filled; zeros where it is flat or empty."""
    x = fill_gaps(np.asarray(signal, dtype=float))
    if not np.isfinite(x).all() or np.ptp(x) == 0:
        return np.zeros(x.size)
    return autocorrelation(x)


def choose_rhythm(intensity: IntensityBeats, seg_acf: np.ndarray, seg_rr_frames: np.ndarray,
                  seg_votes: bool, fps: float, hr_range_bpm: tuple[float, float],
                  config: RhythmConfig) -> RhythmChoice:
    """Settle the beat period of a video from both beat signals.

    Where the intensity beats (periodicity >= `min_intensity_periodicity`), its rate is the
    precise one and only its octave is in question. The intensity's own period (octave
    settled by `beat_signal.intensity_beats`) stands unless half of it is supported by
    both signals together: of its period, half and twice it (inside the plausible
    `hr_range_bpm`), the shortest whose autocorrelation summed over the intensity's pixels
    and (where `seg_votes`: its beats are alike) the volume signal reaches
    `beat_signal.OCTAVE_SHARE` of the best candidate's. A signal that repeats every beat
    also repeats every second beat, so the shortest supported period is the beat: the
    intensity's period is never lengthened by masks that beat slower (a structure that is
    not the heart), a halved intensity rate is mended where the masks repeat every beat,
    and masks that double the rate (two chambers in one outline) are outvoted by the
    pixels, which each repeat once per beat. The volume signal's beats are used when their
    median interval (`seg_rr_frames`) lies within `agreement_pct` of that period. Where the
    intensity does not beat, the volume signal's beats, if any, give the period alone; where
    neither has beats, the intensity's own period is kept (QC then says the rhythm is weak).
    """
    rr = np.asarray(seg_rr_frames, dtype=float)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    seg_period = float(np.median(rr)) if rr.size else float("nan")
    intensity_ok = (np.isfinite(intensity.period_frames)
                    and intensity.periodicity >= config.min_intensity_periodicity)
    if not intensity_ok:
        if np.isfinite(seg_period):
            return RhythmChoice(seg_period, True, False)
        return RhythmChoice(intensity.period_frames, False,
                            bool(np.isfinite(intensity.period_frames)))
    min_period, max_period = 60.0 * fps / hr_range_bpm[1], 60.0 * fps / hr_range_bpm[0]
    candidates = octave_candidates(intensity.period_frames, min_period, max_period)
    summed = [acf_near(intensity.pixel_acf, p) + (acf_near(seg_acf, p) if seg_votes else 0.0)
              for p in candidates]
    period = float(np.nanmin([intensity.period_frames, shortest_supported(candidates, summed)]))
    agrees = bool(np.isfinite(seg_period)
                  and abs(seg_period - period) <= config.agreement_pct / 100.0 * period)
    return RhythmChoice(float(period), agrees, True)


def fuse_trains(seg_times_s, seg_usable, intensity_times_s, period_s: float,
                choice: RhythmChoice) -> BeatTrain:
    """One beat train from the volume signal's beats and the intensity's.

    seg_times_s : (m,) the volume signal's beats on the ES reference (`reference_times`).
    seg_usable : (m,) bool, beats whose masks are there (a beat over a mask dropout is not;
        where the masks alone time the train, every beat is kept).
    intensity_times_s : (k,) the intensity trace's beats, on its own reference.
    period_s : the chosen beat period.

    The intensity's times are moved onto the ES reference by their typical (circular mean)
    offset from the volume signal's matched beats. A beat both see within `MATCH_PERIODS`
    periods (`both`) is timed by `shared_timer`: by the signal whose beats jitter clearly
    less (`timing_jitter`: masks that wobble, a beat of few frames; or the masks' jitter
    cannot be measured, fewer than three whole intervals, while the intensity's can), else
    by the mean of the volume signal's sub-frame ES and the intensity's time. A beat only
    one signal sees is kept (`segmentation`, `intensity`), except where it lies within
    `GAP_PERIODS` periods of a beat of the other signal that is kept: then the beat of the
    timer (the masks' where both time) stays. Only the signals `choice` uses take part.
    """
    seg_t = np.asarray(seg_times_s, dtype=float)
    usable = np.asarray(seg_usable, dtype=bool) & np.isfinite(seg_t)
    int_t = np.asarray(intensity_times_s, dtype=float)
    int_t = int_t[np.isfinite(int_t)]
    seg_rows = np.flatnonzero(usable)
    if not choice.use_intensity or int_t.size == 0:  # the masks alone: every beat they have
        rows = np.flatnonzero(np.isfinite(seg_t)) if choice.use_segmentation else seg_rows[:0]
        return _train(seg_t[rows], np.full(rows.size, SEGMENTATION), rows)
    if not choice.use_segmentation or seg_rows.size == 0:
        return _train(int_t, np.full(int_t.size, INTENSITY), np.full(int_t.size, -1))
    shifted = int_t + phase_offset_s(seg_t[seg_rows], int_t, period_s)
    timer = shared_timer(timing_jitter(seg_t[seg_rows]), timing_jitter(shifted))
    time_list: list[float] = []
    source_list: list[str] = []
    owner_list: list[int] = []
    taken = np.zeros(seg_t.size, dtype=bool)
    for t in shifted:
        distance = np.where(usable & ~taken, np.abs(seg_t - t), np.inf)
        k = int(np.argmin(distance))
        if distance[k] <= MATCH_PERIODS * period_s:
            taken[k] = True
            time_list.append(seg_t[k] if timer == SEGMENTATION else t if timer == INTENSITY
                             else (seg_t[k] + t) / 2)
            source_list.append(BOTH)
            owner_list.append(k)
        else:
            time_list.append(t)
            source_list.append(INTENSITY)
            owner_list.append(-1)
    for j in np.flatnonzero(usable & ~taken):
        time_list.append(seg_t[j])
        source_list.append(SEGMENTATION)
        owner_list.append(int(j))
    times, source = np.asarray(time_list), np.asarray(source_list)
    owner = np.asarray(owner_list, dtype=int)
    rank = {BOTH: 2, SEGMENTATION: int(timer != INTENSITY), INTENSITY: int(timer == INTENSITY)}
    keep = _not_crowded(times, source, GAP_PERIODS * period_s, rank)
    order = np.argsort(times[keep], kind="stable")
    return _train(times[keep][order], source[keep][order], owner[keep][order])


def shared_timer(seg_jitter: float, int_jitter: float) -> str:
    """Who times the beats both signals see, from their `timing_jitter`: the one whose
    jitter is under STEADIER x the other's (SEGMENTATION or INTENSITY), else both (BOTH:
    the mean of their times, two estimates of one instant); masks whose jitter cannot be
    told (too few whole intervals) leave it to an intensity whose jitter can, and where
    neither can be told the masks time it."""
    if np.isnan(seg_jitter):
        return SEGMENTATION if np.isnan(int_jitter) else INTENSITY
    if np.isnan(int_jitter) or seg_jitter < STEADIER * int_jitter:
        return SEGMENTATION
    return INTENSITY if int_jitter < STEADIER * seg_jitter else BOTH


def timing_jitter(times_s: np.ndarray) -> float:
    """How much a beat train's timing wobbles: the median change between consecutive
    intervals, as a share of the median interval (intervals of a missed beat, over 1.5
    median intervals, are left out); NaN with fewer than 4 beats."""
    t = np.sort(np.asarray(times_s, dtype=float))
    rr = np.diff(t)
    if rr.size < 3:
        return float("nan")
    typical = float(np.median(rr))
    whole = rr < 1.5 * typical
    change = np.abs(np.diff(rr))[whole[1:] & whole[:-1]]
    return float(np.median(change) / typical) if change.size and typical > 0 else float("nan")


def _not_crowded(times: np.ndarray, source: np.ndarray, gap_s: float,
                 rank: dict[str, int]) -> np.ndarray:
    """(n,) bool: beats to keep, dropping a beat that lies within `gap_s` of a beat of higher
    `rank` (by source): one signal mistimed a beat the other timed, not a beat of its own."""
    level = np.array([rank[x] for x in source])
    keep = np.ones(times.size, dtype=bool)
    for i in range(times.size):
        near = np.abs(times - times[i]) <= gap_s
        keep[i] = not np.any(near & (level > level[i]))
    return keep


def phase_offset_s(reference_s: np.ndarray, other_s: np.ndarray, period_s: float) -> float:
    """Typical delay (s) from each `other` beat to the nearest `reference` beat, as the
    circular mean over one period (so beats half a period apart do not cancel); 0 if none."""
    if reference_s.size == 0 or other_s.size == 0 or not period_s > 0:
        return 0.0
    nearest = other_s[np.argmin(np.abs(reference_s[:, None] - other_s[None, :]), axis=1)]
    angle = 2 * np.pi * (reference_s - nearest) / period_s
    return float(np.angle(np.mean(np.exp(1j * angle))) * period_s / (2 * np.pi))


def _train(times, source, owner) -> BeatTrain:
    return BeatTrain(np.asarray(times, dtype=float), np.asarray(source, dtype=object),
                     np.asarray(owner, dtype=int))


def usable_beats(beats: pd.DataFrame, area: np.ndarray) -> np.ndarray:
    """(m,) bool: beats of a volume-signal beat table whose masks are there from one frame
    before the ED to one frame after the ES (the ED alone where no ES is seen)."""
    present = np.isfinite(np.asarray(area, dtype=float))
    n = present.size
    out = np.zeros(len(beats), dtype=bool)
    for i, (ed, es) in enumerate(zip(beats["ed_frame"], beats["es_frame"], strict=True)):
        end = es if es >= 0 else ed
        lo, hi = max(0, int(ed) - 1), min(n, int(end) + 2)
        out[i] = ed >= 0 and hi > lo and bool(present[lo:hi].all())
    return out


def fused_beat_table(seg_beats: pd.DataFrame, train: BeatTrain) -> pd.DataFrame:
    """The beat table of the fused train: one row per fused beat, in time order.

    A beat the volume signal timed keeps its row of `seg_beats` (ED/ES frames, volumes,
    axes); an intensity-only beat has frames -1 and no dimensions. `beat` counts the fused
    beats, `beat_time_s` is the beat's time on the ES reference, `rr_s` the interval to the
    next fused beat (NaN for the last), `hr_bpm` = 60 / `rr_s`, and `hr_source` says which
    signal timed it.
    """
    columns = list(seg_beats.columns)
    blank = {c: np.nan for c in columns}
    blank.update({"ed_frame": -1, "es_frame": -1})
    rows = [seg_beats.iloc[k].to_dict() if k >= 0 else dict(blank)
            for k in train.segmentation_beat]
    table = pd.DataFrame(rows, columns=columns)
    rr = train.rr_s
    table["beat"] = np.arange(len(table))
    table["beat_time_s"] = train.times_s
    table["rr_s"] = rr
    with np.errstate(divide="ignore", invalid="ignore"):
        table["hr_bpm"] = np.where(rr > 0, 60.0 / rr, np.nan)
    table["hr_source"] = train.source.astype(str)
    return table.astype({"beat": int, "ed_frame": int, "es_frame": int})


@dataclass(frozen=True)
class VideoRhythm:
    """The rhythm of one video: the fused beats and what they rest on.

    beats : the fused beat table (`fused_beat_table`).
    choice : the period and the signals used (`choose_rhythm`).
    intensity : the model-free beat signal.
    segmentation_hr_bpm : 60 / mean interval of the volume signal's own beats (NaN: none).
    segmentation_periodicity : how alike its consecutive beats are (`qc.beat_similarity`).
    fps : frames per second.
    """

    beats: pd.DataFrame
    choice: RhythmChoice
    intensity: IntensityBeats
    segmentation_hr_bpm: float
    segmentation_hr_bpm_median: float
    segmentation_periodicity: float
    fps: float

    def summary(self) -> BeatSummary:
        """`cardiac.summarise_beats` of the fused train; a clip of fewer than two beats (no
        interval) takes its heart rate from the period both signals settled on."""
        summary = summarise_beats(self.beats)
        if np.isfinite(summary.hr_bpm) or not np.isfinite(self.choice.period_frames):
            return summary
        rate = 60.0 * self.fps / self.choice.period_frames
        return replace(summary, hr_bpm=rate, hr_bpm_median=rate)

    @property
    def periodicity(self) -> float:
        """Beat-to-beat repeatability of the signal(s) the beat train rests on (the better
        of the two where both time it); NaN where unknown."""
        values = {BOTH: (self.intensity.periodicity, self.segmentation_periodicity),
                  INTENSITY: (self.intensity.periodicity,),
                  SEGMENTATION: (self.segmentation_periodicity,)}[self.choice.source]
        finite = [v for v in values if np.isfinite(v)]
        return float(max(finite)) if finite else float("nan")


def video_rhythm(frames: pd.DataFrame, detection: CycleDetection, seg_beats: pd.DataFrame,
                 thumbs: np.ndarray, fps: float, cycles: CycleConfig,
                 config: RhythmConfig) -> VideoRhythm:
    """Fuse the volume signal's beats (`detection`, `seg_beats` of `frames`) with the beats of
    the model-free trace of (T', h, w) `thumbs` (the first T' <= T frames) at `fps`."""
    hr_range = (cycles.hr_min_bpm, cycles.hr_max_bpm)
    intensity = intensity_beats(thumbs, fps, *hr_range)
    signal = frames[cycles.signal].to_numpy(dtype=float)
    similarity = beat_similarity(signal, seg_beats["ed_frame"].to_numpy(), detection.period_frames)
    choice = choose_rhythm(intensity, segmentation_acf(signal), detection.rr_s * fps,
                           bool(similarity >= config.min_segmentation_periodicity), fps, hr_range,
                           config)
    int_times = np.empty(0)
    if choice.use_intensity and np.isfinite(choice.period_frames):
        trace = in_phase(intensity.trace, signal) if choice.use_segmentation else intensity.trace
        found = trace_beats(trace, fps, choice.period_frames, cycles)
        int_times = reference_times(found.ed_times_s, found.es_times_s, (trace.size - 1) / fps)
    # seg_beats has one row per beat of `detection`, in its order
    seg_times = reference_times(detection.ed_times_s, detection.es_times_s,
                                (len(frames) - 1) / fps)
    train = fuse_trains(seg_times, usable_beats(seg_beats, frames["area_um2"]), int_times,
                        choice.period_frames / fps, choice)
    rr = np.asarray(seg_beats["rr_s"], dtype=float)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    return VideoRhythm(fused_beat_table(seg_beats, train), choice, intensity,
                       60.0 / rr.mean() if rr.size else float("nan"),
                       float(np.median(60.0 / rr)) if rr.size else float("nan"), similarity,
                       float(fps))
