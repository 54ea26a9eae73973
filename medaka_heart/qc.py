"""Quality control of one analysed video: measured QC values and the flags they raise (pure).

Every check reads what the analysis already produced (the per-frame table, the beat table,
the model-free heart rate) and compares one number with one threshold of `config.QCConfig`:

- ``no_heart``: the ventricle mask is empty in every frame;
- ``empty_masks``: it is empty in more than `max_empty_fraction` of the frames;
- ``too_few_beats``: fewer than `min_beats` beats were detected;
- ``low_confidence``: the median per-frame segmentation confidence is below `min_confidence`;
- ``weak_periodicity``: consecutive beats of the ventricle volume correlate less than
  `min_periodicity` (median; the autocorrelation at the period, beat by beat);
- ``hr_mismatch``: the heart rate of the beats (hr_bpm_median, from the median interval,
  so that a skipped beat does not count) and the model-free hr_bpm_intensity differ by more
  than `max_hr_difference_pct` percent (of hr_bpm_intensity);
- ``implausible_hr``: hr_bpm_median outside [`hr_min_bpm`, `hr_max_bpm`];
- ``implausible_ef``: ef_pct outside [`ef_min_pct`, `ef_max_pct`];
- ``large_motion``: the ventricle's centroid travels (95th percentile of its distance from
  its median position) more than `max_motion_diameters` ventricle diameters;

and one *finding*, which is biology rather than a measurement problem and so leaves
`qc_pass` True: ``irregular_rhythm``, when the RR intervals vary by more than
`max_rr_cv_pct` percent (coefficient of variation) or a beat is skipped (an RR longer than
`skipped_beat_ratio` times the median RR). A check whose input is missing (NaN: no segmenter
confidence, no model-free rate, no beats) raises nothing; `too_few_beats` covers the rest.

The flags are a function of `QCMetrics` alone, which are the ``qc_*`` columns of summary.csv
together with n_frames, n_beats, hr_bpm, hr_bpm_median, hr_bpm_intensity and ef_pct, so the
reasons can be rebuilt from a summary row (`metrics_from_row`) without the video.
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
    hr_difference_pct: float  # 100 |hr_bpm_median - hr_bpm_intensity| / hr_bpm_intensity
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
            "qc_flags": ";".join(f.name for f in self.problems),
            "qc_findings": ";".join(f.name for f in self.findings),
            "qc_empty_fraction": m.empty_fraction,
            "qc_confidence": m.confidence,
            "qc_periodicity": m.periodicity,
            "qc_hr_difference_pct": m.hr_difference_pct,
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


def quality_metrics(
    frames: pd.DataFrame,
    beats: pd.DataFrame,
    *,
    fps: float,
    period_frames: float = float("nan"),
    hr_bpm_intensity: float = float("nan"),
    signal: str = "volume_pl",
    skipped_beat_ratio: float = QCConfig.skipped_beat_ratio,
) -> QCMetrics:
    """Measure the QC values of one video.

    Parameters
    ----------
    frames : frames.csv table (schema.FRAME_COLUMNS, + `confidence` when segmented).
    beats : beats.csv table (schema.BEAT_COLUMNS).
    fps : frames per second.
    period_frames : dominant period the beats were found with (cycles.CycleDetection);
        NaN: the median RR interval is used.
    hr_bpm_intensity : the model-free heart rate (intensity_rate), NaN if unknown.
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
    difference = float("nan")
    if np.isfinite(hr_median) and np.isfinite(hr_bpm_intensity) and hr_bpm_intensity > 0:
        difference = float(100.0 * abs(hr_median - hr_bpm_intensity) / hr_bpm_intensity)
    ef = beats["ef_pct"].to_numpy(dtype=float)
    ef = float(ef[np.isfinite(ef)].mean()) if np.isfinite(ef).any() else float("nan")
    cv, skipped = rr_irregularity(rr, skipped_beat_ratio)
    _, motion = centroid_travel(frames)
    return QCMetrics(
        n_frames=n,
        empty_fraction=empty,
        confidence=confidence,
        periodicity=beat_similarity(frames[signal].to_numpy(dtype=float),
                                    beats["ed_frame"].to_numpy(), period_frames),
        n_beats=len(beats),
        hr_bpm=float(hr),
        hr_bpm_median=hr_median,
        hr_bpm_intensity=float(hr_bpm_intensity),
        hr_difference_pct=difference,
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
    if m.n_beats < c.min_beats and not no_heart:
        flags.append(QCFlag("too_few_beats", f"{m.n_beats} beat(s) detected (at least "
                            f"{c.min_beats} needed)"))
    if _below(m.confidence, c.min_confidence):
        flags.append(QCFlag("low_confidence", f"median segmentation confidence {m.confidence:.2f}"
                            f" (limit {c.min_confidence:.2f})"))
    if _below(m.periodicity, c.min_periodicity):
        flags.append(QCFlag("weak_periodicity", f"consecutive beats correlate "
                            f"{m.periodicity:.2f} (limit {c.min_periodicity:.2f})"))
    if _above(m.hr_difference_pct, c.max_hr_difference_pct):
        flags.append(QCFlag("hr_mismatch", f"heart rate {m.hr_bpm_median:.0f} bpm from the beats "
                            f"(median interval) but "
                            f"{m.hr_bpm_intensity:.0f} bpm model-free ({m.hr_difference_pct:.0f}% "
                            f"apart, limit {c.max_hr_difference_pct:.0f}%)"))
    if _below(m.hr_bpm_median, c.hr_min_bpm) or _above(m.hr_bpm_median, c.hr_max_bpm):
        flags.append(QCFlag("implausible_hr", f"heart rate {m.hr_bpm_median:.0f} bpm (median) "
                            f"outside {c.hr_min_bpm:.0f}-{c.hr_max_bpm:.0f} bpm"))
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
        flags.append(QCFlag("irregular_rhythm", "; ".join(irregular), finding=True))
    return tuple(flags)


def assess_quality(
    frames: pd.DataFrame,
    beats: pd.DataFrame,
    *,
    fps: float,
    period_frames: float = float("nan"),
    hr_bpm_intensity: float = float("nan"),
    signal: str = "volume_pl",
    config: QCConfig | None = None,
) -> QCResult:
    """QC values and flags of one video (arguments as in `quality_metrics`)."""
    config = config or QCConfig()
    metrics = quality_metrics(frames, beats, fps=fps, period_frames=period_frames,
                              hr_bpm_intensity=hr_bpm_intensity, signal=signal,
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
        hr_difference_pct=_number(row, "qc_hr_difference_pct"),
        ef_pct=_number(row, "ef_pct"),
        rr_cv_pct=_number(row, "qc_rr_cv_pct"),
        skipped_beats=count("qc_skipped_beats"),
        motion_diameters=_number(row, "qc_motion_diameters"),
    )
