"""Quality control of one analysed video: measured QC values and the flags they raise (pure).

Every check reads what the analysis already produced (the per-frame table, the fused beat
table, the rates of each beat signal) and compares one number with one threshold of
`config.QCConfig`. The checks are split by what they vouch for.

The rhythm (``qc_rhythm_pass``: heart rate, RR intervals, HRV, the beat train):

- ``too_few_beats``: fewer than `min_beats` beats in the fused train;
- ``weak_rhythm``: the beat signal the train rests on (the more periodic of the two where
  both time it) repeats less than `min_rhythm_periodicity` from beat to beat;
- ``implausible_hr``: hr_bpm_median outside [`hr_min_bpm`, `hr_max_bpm`];
- ``unconfirmed_rhythm``: the train rests on the masks alone (hr_source `segmentation`):
  the model-free signal does not beat, so nothing independent confirms the rate, and masks
  that follow the wrong structure are the commonest cause of a wrong rate;
- ``frame_gaps``: frames were missing from a numbered folder (put back at their times as
  the mean of their neighbours: the timing is right, those frames are guesses);

the dimensions (``qc_dimensions_pass``: volumes, EF, FS, from the masks):

- ``no_heart``: the ventricle mask is empty in every frame;
- ``empty_masks``: it is empty in more than `max_empty_fraction` of the frames;
- ``too_few_measured_beats``: fewer than `min_beats` beats with an ejection fraction;
- ``low_confidence``: the median per-frame segmentation confidence is below `min_confidence`;
- ``weak_periodicity``: consecutive beats of the ventricle volume correlate less than
  `min_periodicity` (median; the autocorrelation at the period, beat by beat);
- ``hr_mismatch``: the rate of the masks' own beats and the video's rate (the fused train's)
  differ by more than `max_hr_difference_pct` percent, compared both by their median
  intervals (hr_bpm_segmentation_median against hr_bpm_median: blind to a missed beat) and
  by their mean intervals (hr_bpm_segmentation against hr_bpm: blind to intervals that
  alternate long-short, whose median lands on either kind), and flagged only when both
  differ: the masks follow something that does not beat with the heart;
- ``implausible_ef``: ef_pct outside [`ef_min_pct`, `ef_max_pct`];
- ``large_motion``: the ventricle's centroid travels (95th percentile of its distance from
  its median position) more than `max_motion_diameters` ventricle diameters;

and two *findings*, which leave `qc_pass` True: ``pixel_size_default`` (the sizes rest on
the configuration's default pixel size: say so, as nothing else would), and
``irregular_rhythm``, biology rather than a measurement problem, when the RR intervals
vary by more than `max_rr_cv_pct` percent (coefficient of variation) or a beat is skipped
(an RR longer than `skipped_beat_ratio` times the median RR). A check whose input is missing
(NaN: no segmenter confidence, no model-free rate, no beats) raises nothing; `too_few_beats`
covers the rest.

The flags are a function of `QCMetrics` alone, which are the ``qc_*`` columns of summary.csv
together with n_frames, n_beats, hr_bpm, hr_bpm_median, hr_bpm_intensity,
hr_bpm_segmentation_median and ef_pct, so the reasons can be rebuilt from a summary row
(`metrics_from_row`) without the video. ``qc_pass`` is ``qc_rhythm_pass and
qc_dimensions_pass``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import QCConfig
from .cycles import fill_gaps


@dataclass(frozen=True)
class QCMetrics:
    """The measured QC values of one video (NaN where not measurable)."""

    n_frames: int
    empty_fraction: float  # frames whose ventricle mask is empty, 0-1
    confidence: float  # median per-frame segmentation confidence, 0-1 (NaN: masks given)
    periodicity: float  # median correlation of consecutive beats of the volume signal, <= 1
    n_beats: int
    hr_bpm: float  # 60 / mean RR
    hr_bpm_median: float  # median of the per-beat rates 60 / RR
    hr_bpm_intensity: float  # model-free heart rate
    hr_bpm_segmentation_median: float  # median rate of the masks' own beats
    # 100 |masks' rate - video's rate| / video's rate, the smaller of the medians' and the
    # means' difference (either where only one is known)
    hr_difference_pct: float
    rhythm_periodicity: float  # beat-to-beat repeatability of the signal the train rests on
    measured_beats: int  # beats with an ejection fraction
    hr_source: str  # what the beat train rests on: both | segmentation | intensity ("": own)
    missing_frames: int  # frames missing from a numbered folder (rebuilt from neighbours)
    pixel_size_default: bool  # sizes rest on the config's default pixel size
    ef_pct: float
    rr_cv_pct: float  # 100 SD / mean of the RR intervals
    skipped_beats: int  # RR intervals longer than skipped_beat_ratio x their median
    motion_diameters: float  # centroid travel in ventricle diameters


@dataclass(frozen=True)
class QCFlag:
    """One raised check: its name, a one-line reason with the numbers, and its kind."""

    name: str
    message: str
    finding: bool = False  # True: biology worth a look (qc_pass unaffected), not a failure
    rhythm: bool = False  # True: vouches for the rhythm; False: for the dimensions


@dataclass(frozen=True)
class QCResult:
    """QC of one video: the measured values and the flags raised."""

    metrics: QCMetrics
    flags: tuple[QCFlag, ...]

    @property
    def passed(self) -> bool:
        """True when no flag other than a finding was raised."""
        return not self.problems

    @property
    def rhythm_passed(self) -> bool:
        """True when no rhythm flag was raised: the beat train can be trusted."""
        return not any(f.rhythm for f in self.problems)

    @property
    def dimensions_passed(self) -> bool:
        """True when no dimensions flag was raised: volumes, EF and FS can be trusted."""
        return not any(not f.rhythm for f in self.problems)

    @property
    def problems(self) -> tuple[QCFlag, ...]:
        return tuple(f for f in self.flags if not f.finding)

    @property
    def findings(self) -> tuple[QCFlag, ...]:
        return tuple(f for f in self.flags if f.finding)

    def to_dict(self) -> dict[str, Any]:
        """The qc columns of summary.csv (see schema.SUMMARY_COLUMNS)."""
        m = self.metrics
        return {
            "qc_pass": self.passed,
            "qc_rhythm_pass": self.rhythm_passed,
            "qc_dimensions_pass": self.dimensions_passed,
            "qc_flags": ";".join(f.name for f in self.problems),
            "qc_findings": ";".join(f.name for f in self.findings),
            "qc_empty_fraction": m.empty_fraction,
            "qc_confidence": m.confidence,
            "qc_periodicity": m.periodicity,
            "qc_hr_difference_pct": m.hr_difference_pct,
            "qc_rhythm_periodicity": m.rhythm_periodicity,
            "qc_measured_beats": m.measured_beats,
            "qc_missing_frames": m.missing_frames,
            "qc_rr_cv_pct": m.rr_cv_pct,
            "qc_skipped_beats": m.skipped_beats,
            "qc_motion_diameters": m.motion_diameters,
        }


def beat_similarity(signal: np.ndarray, ed_frames: np.ndarray, period_frames: float) -> float:
    """How alike consecutive beats of a (T,) ventricle signal are: median correlation, <= 1.

    Each pair of consecutive end-diastoles k, k+1 gives the Pearson correlation between the
    signal over one period from ED k and over one period from ED k+1 (NaN gaps filled). It is
    the signal's autocorrelation at the detected period, taken beat by beat with the lag set
    to each actual interval, so an irregular rhythm (a finding of its own) does not lower it
    while noise and a segmentation that fails in some beats do. NaN without two beats whose
    windows lie inside the video.
    """
    x = fill_gaps(np.asarray(signal, dtype=float))
    if not np.isfinite(period_frames) or not np.isfinite(x).all():
        return float("nan")
    length = round(period_frames)
    ed = np.asarray(ed_frames, dtype=int)
    r = []
    for a, b in itertools.pairwise(ed):
        if length < 3 or a < 0 or b + length > x.size:
            continue
        u, v = x[a : a + length], x[b : b + length]
        if np.ptp(u) > 0 and np.ptp(v) > 0:
            r.append(np.corrcoef(u, v)[0, 1])
    return float(np.median(r)) if r else float("nan")


def centroid_travel(frames: pd.DataFrame) -> tuple[float, float]:
    """(travel in um, travel in ventricle diameters) of the ventricle's centroid.

    Travel is the 95th percentile of the centroid's distance from its median position (a
    few frames of a wrong component do not count); the diameter is the median
    equiv_diameter_um. NaN without a ventricle.
    """
    xy = frames[["centroid_x_um", "centroid_y_um"]].to_numpy(dtype=float)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) == 0:
        return float("nan"), float("nan")
    travel = float(np.percentile(np.hypot(*(xy - np.median(xy, axis=0)).T), 95))
    diameter = float(np.nanmedian(frames["equiv_diameter_um"].to_numpy(dtype=float)))
    return travel, travel / diameter if diameter > 0 else float("nan")


def rr_irregularity(rr_s: np.ndarray, skipped_ratio: float) -> tuple[float, int]:
    """(coefficient of variation in %, number of RR > skipped_ratio x median) of RR intervals."""
    rr = np.asarray(rr_s, dtype=float)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    if rr.size < 2:
        return float("nan"), 0
    cv = 100.0 * float(np.std(rr, ddof=1) / np.mean(rr))
    return cv, int(np.sum(rr > skipped_ratio * np.median(rr)))


def rate_difference_pct(*pairs: tuple[float, float]) -> float:
    """The smallest 100 |a - b| / b over the (a, b) pairs of rates (bpm) where both are
    known and b > 0; NaN where none is."""
    known = [100.0 * abs(a - b) / b for a, b in pairs
             if np.isfinite(a) and np.isfinite(b) and b > 0]
    return float(min(known)) if known else float("nan")


def quality_metrics(
    frames: pd.DataFrame,
    beats: pd.DataFrame,
    *,
    fps: float,
    period_frames: float = float("nan"),
    hr_bpm_intensity: float = float("nan"),
    hr_bpm_segmentation_median: float = float("nan"),
    hr_bpm_segmentation: float = float("nan"),
    rhythm_periodicity: float = float("nan"),
    hr_source: str = "",
    missing_frames: int = 0,
    pixel_size_default: bool = False,
    signal: str = "volume_pl",
    skipped_beat_ratio: float = QCConfig.skipped_beat_ratio,
) -> QCMetrics:
    """Measure the QC values of one video.

    Parameters
    ----------
    frames : frames.csv table (schema.FRAME_COLUMNS, + `confidence` when segmented).
    beats : beats.csv table (schema.BEAT_COLUMNS): the fused beat train (rhythm.py), or
        the volume signal's own beats where nothing was fused.
    fps : frames per second.
    period_frames : dominant period the beats were found with (cycles.CycleDetection);
        NaN: the median RR interval is used.
    hr_bpm_intensity : the model-free heart rate (beat_signal), NaN if unknown.
    hr_bpm_segmentation_median, hr_bpm_segmentation : rate of the masks' own beats from
        their median and from their mean interval; NaN: not compared.
    rhythm_periodicity : repeatability of the signal the beat train rests on; NaN: the
        volume signal's (the beats are its own).
    hr_source : what the train rests on (`rhythm.RhythmChoice.source`); "" where the beats
        are the volume signal's own and nothing was fused.
    signal : the frames column the beats were found on.
    skipped_beat_ratio : an RR longer than this times the median RR is a skipped beat.
    """
    n = len(frames)
    area = frames["area_um2"].to_numpy(dtype=float)
    empty = float(np.mean(~np.isfinite(area))) if n else float("nan")
    confidence = float("nan")
    if "confidence" in frames.columns and frames["confidence"].notna().any():
        confidence = float(frames["confidence"].median())
    rr = beats["rr_s"].to_numpy(dtype=float)
    finite_rr = rr[np.isfinite(rr) & (rr > 0)]
    if not np.isfinite(period_frames) and finite_rr.size:
        period_frames = float(np.median(finite_rr) * fps)
    hr = 60.0 / finite_rr.mean() if finite_rr.size else float("nan")
    hr_median = float(np.median(60.0 / finite_rr)) if finite_rr.size else float("nan")
    difference = rate_difference_pct((hr_bpm_segmentation_median, hr_median),
                                     (hr_bpm_segmentation, hr))
    ef_all = beats["ef_pct"].to_numpy(dtype=float)
    ef = float(ef_all[np.isfinite(ef_all)].mean()) if np.isfinite(ef_all).any() else float("nan")
    cv, skipped = rr_irregularity(rr, skipped_beat_ratio)
    _, motion = centroid_travel(frames)
    ed_frames = beats["ed_frame"].to_numpy()
    periodicity = beat_similarity(frames[signal].to_numpy(dtype=float),
                                  ed_frames[ed_frames >= 0], period_frames)
    return QCMetrics(
        n_frames=n,
        empty_fraction=empty,
        confidence=confidence,
        periodicity=periodicity,
        n_beats=len(beats),
        hr_bpm=float(hr),
        hr_bpm_median=hr_median,
        hr_bpm_intensity=float(hr_bpm_intensity),
        hr_bpm_segmentation_median=float(hr_bpm_segmentation_median),
        hr_difference_pct=difference,
        rhythm_periodicity=(float(rhythm_periodicity) if np.isfinite(rhythm_periodicity)
                            else periodicity),
        measured_beats=int(np.isfinite(ef_all).sum()),
        hr_source=hr_source,
        missing_frames=int(missing_frames),
        pixel_size_default=bool(pixel_size_default),
        ef_pct=ef,
        rr_cv_pct=cv,
        skipped_beats=skipped,
        motion_diameters=motion,
    )


def _below(value: float, limit: float) -> bool:
    return bool(np.isfinite(value) and value < limit)


def _above(value: float, limit: float) -> bool:
    return bool(np.isfinite(value) and value > limit)


def quality_flags(m: QCMetrics, config: QCConfig | None = None) -> tuple[QCFlag, ...]:
    """The flags (and findings) that the QC values `m` raise under the thresholds of `config`."""
    c = config or QCConfig()
    flags = []
    no_heart = bool(m.n_frames and m.empty_fraction >= 1.0)
    if no_heart:
        flags.append(QCFlag("no_heart", "no ventricle found in any frame"))
    elif _above(m.empty_fraction, c.max_empty_fraction):
        flags.append(QCFlag("empty_masks", f"ventricle mask empty in {100 * m.empty_fraction:.0f}%"
                            f" of frames (limit {100 * c.max_empty_fraction:.0f}%)"))
    if m.n_beats < c.min_beats:
        flags.append(QCFlag("too_few_beats", f"{m.n_beats} beat(s) detected (at least "
                            f"{c.min_beats} needed)", rhythm=True))
    if _below(m.rhythm_periodicity, c.min_rhythm_periodicity):
        flags.append(QCFlag("weak_rhythm", f"the beat signal repeats {m.rhythm_periodicity:.2f} "
                            f"from beat to beat (limit {c.min_rhythm_periodicity:.2f})",
                            rhythm=True))
    if _below(m.hr_bpm_median, c.hr_min_bpm) or _above(m.hr_bpm_median, c.hr_max_bpm):
        flags.append(QCFlag("implausible_hr", f"heart rate {m.hr_bpm_median:.0f} bpm (median) "
                            f"outside {c.hr_min_bpm:.0f}-{c.hr_max_bpm:.0f} bpm", rhythm=True))
    if m.hr_source == "segmentation":
        flags.append(QCFlag("unconfirmed_rhythm", "only the masks beat: the model-free signal "
                            "does not confirm the rate", rhythm=True))
    if m.missing_frames:
        flags.append(QCFlag("frame_gaps", f"{m.missing_frames} frame(s) missing from the "
                            "numbering, rebuilt from their neighbours", rhythm=True))
    if m.measured_beats < c.min_beats and not no_heart:
        flags.append(QCFlag("too_few_measured_beats", f"{m.measured_beats} beat(s) with an "
                            f"ejection fraction (at least {c.min_beats} needed)"))
    if _below(m.confidence, c.min_confidence):
        flags.append(QCFlag("low_confidence", f"median segmentation confidence {m.confidence:.2f}"
                            f" (limit {c.min_confidence:.2f})"))
    if _below(m.periodicity, c.min_periodicity):
        flags.append(QCFlag("weak_periodicity", f"consecutive beats correlate "
                            f"{m.periodicity:.2f} (limit {c.min_periodicity:.2f})"))
    if _above(m.hr_difference_pct, c.max_hr_difference_pct):
        flags.append(QCFlag("hr_mismatch", f"the masks beat at {m.hr_bpm_segmentation_median:.0f}"
                            f" bpm but the heart at {m.hr_bpm_median:.0f} bpm (median intervals;"
                            f" at least {m.hr_difference_pct:.1f}% apart by median and by mean"
                            f" intervals, limit {c.max_hr_difference_pct:g}%)"))
    if _below(m.ef_pct, c.ef_min_pct) or _above(m.ef_pct, c.ef_max_pct):
        flags.append(QCFlag("implausible_ef", f"ejection fraction {m.ef_pct:.0f}% outside "
                            f"{c.ef_min_pct:.0f}-{c.ef_max_pct:.0f}%"))
    if _above(m.motion_diameters, c.max_motion_diameters):
        flags.append(QCFlag("large_motion", f"ventricle moved {m.motion_diameters:.2f} diameters "
                            f"(limit {c.max_motion_diameters:.2f})"))
    irregular = []
    if m.skipped_beats > 0:
        irregular.append(f"{m.skipped_beats} skipped beat(s) (RR > {c.skipped_beat_ratio:g}x "
                         "median)")
    if _above(m.rr_cv_pct, c.max_rr_cv_pct):
        irregular.append(f"RR varies by {m.rr_cv_pct:.0f}% (CV, limit {c.max_rr_cv_pct:.0f}%)")
    if irregular:
        flags.append(QCFlag("irregular_rhythm", "; ".join(irregular), finding=True, rhythm=True))
    if m.pixel_size_default:
        flags.append(QCFlag("pixel_size_default", "volumes and lengths rest on the default "
                            "pixel size (no --pixel-size, none in the file): check it is your "
                            "microscope's", finding=True))
    return tuple(flags)


def assess_quality(
    frames: pd.DataFrame,
    beats: pd.DataFrame,
    *,
    fps: float,
    period_frames: float = float("nan"),
    hr_bpm_intensity: float = float("nan"),
    hr_bpm_segmentation_median: float = float("nan"),
    hr_bpm_segmentation: float = float("nan"),
    rhythm_periodicity: float = float("nan"),
    hr_source: str = "",
    missing_frames: int = 0,
    pixel_size_default: bool = False,
    signal: str = "volume_pl",
    config: QCConfig | None = None,
) -> QCResult:
    """QC values and flags of one video (arguments as in `quality_metrics`)."""
    config = config or QCConfig()
    metrics = quality_metrics(frames, beats, fps=fps, period_frames=period_frames,
                              hr_bpm_intensity=hr_bpm_intensity,
                              hr_bpm_segmentation_median=hr_bpm_segmentation_median,
                              hr_bpm_segmentation=hr_bpm_segmentation,
                              rhythm_periodicity=rhythm_periodicity, hr_source=hr_source,
                              missing_frames=missing_frames,
                              pixel_size_default=pixel_size_default, signal=signal,
                              skipped_beat_ratio=config.skipped_beat_ratio)
    return QCResult(metrics, quality_flags(metrics, config))


def _number(row: Mapping[str, Any], key: str) -> float:
    try:
        value = float(row.get(key, np.nan))
    except (TypeError, ValueError):
        return float("nan")
    return value


def metrics_from_row(row: Mapping[str, Any]) -> QCMetrics:
    """QCMetrics back from a summary.csv row (its qc_* columns and the metrics they use)."""
    def count(key: str) -> int:
        value = _number(row, key)
        return int(value) if np.isfinite(value) else 0

    return QCMetrics(
        n_frames=count("n_frames"),
        empty_fraction=_number(row, "qc_empty_fraction"),
        confidence=_number(row, "qc_confidence"),
        periodicity=_number(row, "qc_periodicity"),
        n_beats=count("n_beats"),
        hr_bpm=_number(row, "hr_bpm"),
        hr_bpm_median=_number(row, "hr_bpm_median"),
        hr_bpm_intensity=_number(row, "hr_bpm_intensity"),
        hr_bpm_segmentation_median=_number(row, "hr_bpm_segmentation_median"),
        hr_difference_pct=_number(row, "qc_hr_difference_pct"),
        rhythm_periodicity=_number(row, "qc_rhythm_periodicity"),
        measured_beats=count("qc_measured_beats" if "qc_measured_beats" in row else "n_beats"),
        hr_source=row["hr_source"] if isinstance(row.get("hr_source"), str) else "",
        missing_frames=count("qc_missing_frames"),
        pixel_size_default=row.get("pixel_size_source") == "default",
        ef_pct=_number(row, "ef_pct"),
        rr_cv_pct=_number(row, "qc_rr_cv_pct"),
        skipped_beats=count("qc_skipped_beats"),
        motion_diameters=_number(row, "qc_motion_diameters"),
    )
