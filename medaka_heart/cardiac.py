"""Cardiac metrics from the per-frame ventricle features and the detected cycles (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .cycles import CycleDetection, parabolic_offset, value_at
from .schema import BEAT_COLUMNS

UM3_PER_PL = 1000.0  # 1 pl = 1e-15 m^3 = 1000 um^3


def prolate_spheroid_volume_pl(major_um, minor_um):
    """Volume in pl of a prolate spheroid with full axis lengths in um: pi/6 * minor^2 * major."""
    major_um = np.asarray(major_um, dtype=float)
    minor_um = np.asarray(minor_um, dtype=float)
    return np.pi / 6.0 * minor_um**2 * major_um / UM3_PER_PL


def fractional_shortening_pct(diastolic, systolic):
    """100 * (diastolic - systolic) / diastolic, elementwise; NaN where diastolic <= 0."""
    diastolic = np.asarray(diastolic, dtype=float)
    systolic = np.asarray(systolic, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (diastolic - systolic) / diastolic
    return np.where(diastolic > 0, out, np.nan)


def beat_table(frames: pd.DataFrame, detection: CycleDetection) -> pd.DataFrame:
    """One row per beat (an ED and the ES after it) with the columns of `schema.BEAT_COLUMNS`.

    Times are the refined ones of `detection`. Values are read at the local extremum of the
    volume signal (the vertex of the parabola through the three samples around the sampled
    largest/smallest frame), the other features by the same local quadratic there.
    """
    signal = detection.signal
    rows = []
    for k, (ed, es) in enumerate(zip(detection.ed_index, detection.es_index, strict=True)):
        ed_off, es_off = detection.ed_offset[k], detection.es_offset[k]
        row: dict[str, float] = {"beat": k, "ed_frame": int(ed),
                                 "es_frame": int(es) if es >= 0 else -1}
        row["ed_time_s"] = (ed + ed_off) / detection.fps
        row["es_time_s"] = (es + es_off) / detection.fps if es >= 0 else np.nan
        rr = detection.rr_s[k]
        row["rr_s"] = rr
        row["hr_bpm"] = 60.0 / rr if np.isfinite(rr) and rr > 0 else np.nan
        samples = (detection.ed_sample[k], detection.es_sample[k])
        for phase, idx in zip(("ed", "es"), samples, strict=True):
            off = parabolic_offset(signal, idx) if idx >= 0 else 0.0
            for name in ("area_um2", "major_um", "minor_um"):
                col = np.asarray(frames[name], dtype=float)
                row[f"{phase}_{name}"] = _size_at(col, idx, off)
            row[f"{phase}v_pl"] = _size_at(signal, idx, off)
        rows.append(row)
    beats = pd.DataFrame(rows, columns=list(BEAT_COLUMNS))
    if len(beats):
        beats["sv_pl"] = beats["edv_pl"] - beats["esv_pl"]
        beats["ef_pct"] = fractional_shortening_pct(beats["edv_pl"], beats["esv_pl"])
        for axis in ("minor", "major"):
            beats[f"fs_{axis}_pct"] = fractional_shortening_pct(beats[f"ed_{axis}_um"],
                                                                beats[f"es_{axis}_um"])
        beats["fac_pct"] = fractional_shortening_pct(beats["ed_area_um2"], beats["es_area_um2"])
    return beats[list(BEAT_COLUMNS)].astype({"beat": int, "ed_frame": int, "es_frame": int})


def _size_at(values: np.ndarray, idx: int, offset: float) -> float:
    """A size (never negative) read by `value_at`; NaN where the frame is not seen (-1)."""
    return max(0.0, value_at(values, idx, offset)) if idx >= 0 else float("nan")


def rr_variability_ms(rr_s) -> tuple[float, float]:
    """(SDNN, RMSSD) in ms of beat-to-beat intervals in s; NaN where too few intervals."""
    rr = np.asarray(rr_s, dtype=float)
    rr = rr[np.isfinite(rr)] * 1000.0
    sdnn = float(np.std(rr, ddof=1)) if rr.size >= 2 else float("nan")
    rmssd = float(np.sqrt(np.mean(np.diff(rr) ** 2))) if rr.size >= 2 else float("nan")
    return sdnn, rmssd


@dataclass(frozen=True)
class BeatSummary:
    """Per-video summary of the beat table (the paper's table: mean, std, median, quartiles)."""

    n_beats: int
    hr_bpm: float  # 60 / mean beat interval (rr_s)
    hr_bpm_std: float  # std of per-beat heart rates
    hr_bpm_median: float
    hr_bpm_q1: float
    hr_bpm_q3: float
    sdnn_ms: float
    rmssd_ms: float
    ef_pct: float
    ef_pct_std: float
    ef_pct_median: float
    ef_pct_q1: float
    ef_pct_q3: float
    fs_minor_pct: float
    fs_major_pct: float
    fac_pct: float
    edv_pl: float
    esv_pl: float
    sv_pl: float

    def to_dict(self) -> dict:
        return asdict(self)


def _stats(values) -> tuple[float, float, float, float, float]:
    """mean, std (ddof=1), median, q1, q3 of the finite values; NaN if none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (np.nan,) * 5
    std = float(np.std(v, ddof=1)) if v.size > 1 else np.nan
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(v.mean()), std, float(med), float(q1), float(q3)


def _mean(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def summarise_beats(beats: pd.DataFrame) -> BeatSummary:
    """Summary statistics of a beat table from `beat_table`."""
    rr = np.asarray(beats["rr_s"], dtype=float)
    rr_finite = rr[np.isfinite(rr)]
    hr = 60.0 / rr_finite.mean() if rr_finite.size else np.nan
    _, hr_std, hr_med, hr_q1, hr_q3 = _stats(beats["hr_bpm"])
    sdnn, rmssd = rr_variability_ms(rr)
    ef_mean, ef_std, ef_med, ef_q1, ef_q3 = _stats(beats["ef_pct"])
    return BeatSummary(
        n_beats=len(beats),
        hr_bpm=float(hr),
        hr_bpm_std=hr_std,
        hr_bpm_median=hr_med,
        hr_bpm_q1=hr_q1,
        hr_bpm_q3=hr_q3,
        sdnn_ms=sdnn,
        rmssd_ms=rmssd,
        ef_pct=ef_mean,
        ef_pct_std=ef_std,
        ef_pct_median=ef_med,
        ef_pct_q1=ef_q1,
        ef_pct_q3=ef_q3,
        fs_minor_pct=_mean(beats["fs_minor_pct"]),
        fs_major_pct=_mean(beats["fs_major_pct"]),
        fac_pct=_mean(beats["fac_pct"]),
        edv_pl=_mean(beats["edv_pl"]),
        esv_pl=_mean(beats["esv_pl"]),
        sv_pl=_mean(beats["sv_pl"]),
    )
