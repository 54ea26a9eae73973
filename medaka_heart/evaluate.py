"""Comparison of predicted cardiac phenotypes with the truth (pure: no file access).

Events (ED and ES) are matched one-to-one between prediction and truth within half a
beat; each truth beat gets one row of the pred-vs-truth table (the "pred (truth)"
table of Schutera et al. 2019), and the errors are summarised in an `ErrorSummary`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from .mask_scores import FrameAgreement, MaskScores, frame_agreement

# Per-beat quantities compared side by side (beats.csv columns).
BEAT_VALUES = (
    "rr_s",
    "hr_bpm",
    "edv_pl",
    "esv_pl",
    "sv_pl",
    "ef_pct",
    "fs_minor_pct",
    "fs_major_pct",
    "fac_pct",
)


@dataclass(frozen=True)
class EventMatch:
    """One-to-one matching of predicted to true event times.

    `pred_index[k]` and `true_index[k]` are the positions of the k-th matched pair in the
    input arrays, ordered by true index; `dt_s[k]` = pred time - true time in s.
    """

    pred_index: np.ndarray
    true_index: np.ndarray
    dt_s: np.ndarray
    n_pred: int
    n_true: int

    @property
    def n_matched(self) -> int:
        """Number of matched pairs."""
        return int(self.true_index.size)

    @property
    def n_missed(self) -> int:
        """True events without a predicted partner."""
        return self.n_true - self.n_matched

    @property
    def n_false(self) -> int:
        """Predicted events without a true partner."""
        return self.n_pred - self.n_matched

    def pred_for_true(self) -> np.ndarray:
        """(n_true,) int array: the matched predicted index of each true event, -1 if none."""
        out = np.full(self.n_true, -1, dtype=int)
        out[self.true_index] = self.pred_index
        return out


def match_events(pred_times, true_times, tolerance) -> EventMatch:
    """Match predicted to true event times one-to-one, minimising the total |dt|.

    Parameters
    ----------
    pred_times, true_times : (N,), (M,) float arrays, s
        Event times; NaN entries never match.
    tolerance : float or (M,) float array, s
        Largest |pred - true| accepted for a pair, per true event if an array.

    Returns
    -------
    EventMatch
        The optimal assignment (scipy's Hungarian solver on |dt|) restricted to pairs
        within the tolerance; pairs farther apart are left unmatched.
    """
    pred = np.asarray(pred_times, dtype=float).ravel()
    true = np.asarray(true_times, dtype=float).ravel()
    tol = np.broadcast_to(np.asarray(tolerance, dtype=float), true.shape)
    empty = np.zeros(0, dtype=int)
    if pred.size == 0 or true.size == 0:
        return EventMatch(empty, empty, np.zeros(0), pred.size, true.size)
    dt = np.abs(pred[:, None] - true[None, :])
    allowed = np.isfinite(dt) & (dt <= tol[None, :])
    # Forbidden pairs cost more than any set of allowed ones, so the solver only takes
    # them when nothing else is left; they are then dropped below.
    big = 1.0 + np.nansum(np.where(allowed, dt, 0.0)) * 2.0
    cost = np.where(allowed, dt, big)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(cols)
    rows, cols = rows[order], cols[order]
    return EventMatch(rows, cols, pred[rows] - true[cols], pred.size, true.size)


def local_tolerance_s(event_times_s, rr_s=None, *, fraction: float = 0.5) -> np.ndarray:
    """Matching tolerance per true event: `fraction` of its local RR interval, in s.

    The local RR of an event is `rr_s` of its beat if finite, else the interval to the
    previous event, else the median RR of the video; with no interval at all, inf.

    Parameters
    ----------
    event_times_s : (M,) float array, s
        True event times of one kind (ED or ES), one per beat.
    rr_s : (M,) float array, s, optional
        True interval of each beat to the next (beats.csv `rr_s`); from the times if None.
    """
    t = np.asarray(event_times_s, dtype=float)
    if rr_s is None:
        rr = np.append(np.diff(t), np.nan) if t.size else np.zeros(0)
    else:
        rr = np.asarray(rr_s, dtype=float).copy()
    prev = np.insert(np.diff(t), 0, np.nan) if t.size else np.zeros(0)
    rr = np.where(np.isfinite(rr) & (rr > 0), rr, prev)
    good = np.isfinite(rr) & (rr > 0)
    fallback = float(np.median(rr[good])) if good.any() else math.inf
    rr = np.where(good, rr, fallback)
    return fraction * rr


def dice_per_frame(pred_masks, true_masks) -> np.ndarray:
    """(T,) Dice of each frame (`frame_agreement`)."""
    return frame_agreement(pred_masks, true_masks).dice


def _frames(chunks: Iterable) -> Iterator[np.ndarray]:
    for chunk in chunks:
        arr = np.asarray(chunk)
        yield from arr if arr.ndim == 3 else [arr]


def agreement_stream(pred_chunks: Iterable, true_chunks: Iterable, *, batch: int = 64
                     ) -> FrameAgreement:
    """`frame_agreement` over two streams of mask chunks of any (unequal) chunk sizes.

    Parameters
    ----------
    pred_chunks, true_chunks : iterables of (n, H, W) or (H, W) arrays
        Consecutive frames of the two mask videos. Only `batch` frames are held at once.

    Returns
    -------
    FrameAgreement of the first T frames, T the shorter of the two streams.
    """
    out: list[FrameAgreement] = []
    buf_p: list[np.ndarray] = []
    buf_t: list[np.ndarray] = []
    for p, t in zip(_frames(pred_chunks), _frames(true_chunks), strict=False):
        buf_p.append(p)
        buf_t.append(t)
        if len(buf_p) >= batch:
            out.append(frame_agreement(np.stack(buf_p), np.stack(buf_t)))
            buf_p, buf_t = [], []
    if buf_p:
        out.append(frame_agreement(np.stack(buf_p), np.stack(buf_t)))
    if not out:
        return FrameAgreement(np.zeros(0), np.zeros(0), np.zeros(0))
    return FrameAgreement(*(np.concatenate(parts) for parts in zip(*out, strict=True)))


def dice_stream(pred_chunks: Iterable, true_chunks: Iterable, *, batch: int = 64) -> np.ndarray:
    """(T,) per-frame Dice of two streams of mask chunks (`agreement_stream`)."""
    return agreement_stream(pred_chunks, true_chunks, batch=batch).dice


def _col(beats: pd.DataFrame, name: str) -> np.ndarray:
    if name in beats:
        return np.asarray(pd.to_numeric(beats[name], errors="coerce"), dtype=float)
    return np.full(len(beats), np.nan)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index] as float, NaN where index < 0."""
    out = np.full(index.shape, np.nan)
    ok = index >= 0
    out[ok] = values[index[ok]]
    return out


def _event_times(beats: pd.DataFrame, phase: str, fps: float) -> np.ndarray:
    """Event times in s: refined `<phase>_time_s`, else `<phase>_frame / fps`; NaN if none."""
    frame = _col(beats, f"{phase}_frame")
    frame = np.where(frame >= 0, frame, np.nan)
    t = _col(beats, f"{phase}_time_s")
    return np.where(np.isfinite(t), t, frame / fps)


def compare_beats(pred_beats: pd.DataFrame, true_beats: pd.DataFrame, fps: float) -> pd.DataFrame:
    """The pred-vs-truth beat table: one row per true beat.

    ED and ES events are matched separately (`match_events`) within half the local true
    RR interval (`local_tolerance_s`). The per-beat values (`BEAT_VALUES`) are taken from
    the predicted beat whose ED matched the true ED.

    Parameters
    ----------
    pred_beats, true_beats : DataFrame
        Tables with the columns of `schema.BEAT_COLUMNS` (beats.csv); es_frame -1 = no ES.
    fps : float, frames per s
        Frame rate, to express time errors in frames.

    Returns
    -------
    DataFrame
        Columns: beat, pred_beat (-1 if the ED was missed), ed_matched, es_matched,
        ed_frame_pred/_true, es_frame_pred/_true, ed_frame_error, es_frame_error
        (pred - true, frames), ed_time_s_pred/_true, es_time_s_pred/_true,
        ed_time_error_frames, es_time_error_frames (pred - true refined time, frames),
        and `<value>_pred`, `<value>_true` for each of `BEAT_VALUES`.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = len(true_beats)
    beat = _col(true_beats, "beat")
    out = pd.DataFrame({"beat": beat.astype(int) if np.isfinite(beat).all() else np.arange(n)})
    rr_true = _col(true_beats, "rr_s")
    matched_pred: dict[str, np.ndarray] = {}
    for phase in ("ed", "es"):
        t_true = _event_times(true_beats, phase, fps)
        t_pred = _event_times(pred_beats, phase, fps)
        idx = match_events(t_pred, t_true, local_tolerance_s(t_true, rr_true)).pred_for_true()
        matched_pred[phase] = idx
        f_true = _col(true_beats, f"{phase}_frame")
        f_true = np.where(f_true >= 0, f_true, np.nan)
        f_pred = _take(_col(pred_beats, f"{phase}_frame"), idx)
        tp = _take(t_pred, idx)
        out[f"{phase}_matched"] = idx >= 0
        out[f"{phase}_frame_pred"] = f_pred
        out[f"{phase}_frame_true"] = f_true
        out[f"{phase}_frame_error"] = f_pred - f_true
        out[f"{phase}_time_s_pred"] = tp
        out[f"{phase}_time_s_true"] = t_true
        out[f"{phase}_time_error_frames"] = (tp - t_true) * fps
    out.insert(1, "pred_beat", matched_pred["ed"])
    for name in BEAT_VALUES:
        out[f"{name}_pred"] = _take(_col(pred_beats, name), matched_pred["ed"])
        out[f"{name}_true"] = _col(true_beats, name)
    return out


def count_events(beats: pd.DataFrame) -> tuple[int, int]:
    """(n_ed, n_es): number of ED and ES events in a beats table (es_frame -1 = none)."""
    ed = _col(beats, "ed_frame")
    es = _col(beats, "es_frame")
    return int(np.count_nonzero(ed >= 0)), int(np.count_nonzero(es >= 0))


def _stat(values, how: str) -> float:
    """mean | max | median | p05 of the finite values; NaN if there are none (no warning)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan
    if how == "mean":
        return math.fsum(v) / v.size  # exactly 0.8 for values all 0.8, unlike np.mean
    if how == "max":
        return float(np.max(v))
    if how == "min":
        return float(np.min(v))
    if how == "median":
        return float(np.median(v))
    if how == "p05":
        return float(np.percentile(v, 5))
    raise ValueError(how)


def _rel_pct(pred, true) -> np.ndarray:
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(true != 0, 100.0 * np.abs(pred - true) / np.abs(true), np.nan)


@dataclass(frozen=True)
class ErrorSummary:
    """Agreement of a prediction with the truth, over one or many videos.

    Frame errors are absolute, in frames; `*_time_error_frames_*` use the refined
    (sub-frame) event times times fps. `*_abs_err_*` of percentages are in percentage
    points. NaN where nothing could be compared (e.g. no masks for Dice).
    """

    n_videos: int
    n_frames_dice: int
    n_beats_true: int
    n_beats_pred: int
    n_events_true: int  # true ED + ES events
    n_events_matched: int
    n_false_events: int  # predicted ED + ES events without a true partner
    edes_detection_rate: float  # matched / true events
    ed_detection_rate: float
    es_detection_rate: float
    dice_mean: float
    dice_median: float
    dice_min: float
    dice_p05: float  # 5th percentile of per-frame Dice
    dice_ed: float  # mean Dice over each video's ED-like frames (`mask_scores`)
    dice_es: float  # and over its ES-like frames
    area_error_ed_pct: float  # mean signed area error there, % of the true area (+ too large)
    area_error_es_pct: float
    ed_frame_error_mean: float
    es_frame_error_mean: float
    edes_frame_error_max: float
    ed_time_error_frames_mean: float
    es_time_error_frames_mean: float
    edes_time_error_frames_max: float
    hr_abs_err_bpm_median: float
    hr_rel_err_pct_median: float
    ef_abs_err_median: float
    fs_minor_abs_err_median: float
    fs_major_abs_err_median: float
    fac_abs_err_median: float
    edv_rel_err_pct_median: float
    esv_rel_err_pct_median: float

    def to_dict(self) -> dict[str, float | int]:
        """Field name -> value (plain Python numbers)."""
        return asdict(self)


METRIC_NAMES = tuple(f.name for f in fields(ErrorSummary))


def summarise_errors(
    comparison: pd.DataFrame,
    pred_beats: pd.DataFrame,
    dice=None,
    *,
    phases: MaskScores | None = None,
    n_videos: int = 1,
) -> ErrorSummary:
    """Summarise a pred-vs-truth beat table (one or several videos concatenated).

    Parameters
    ----------
    comparison : DataFrame
        Output of `compare_beats` (rows of several videos may be concatenated).
    pred_beats : DataFrame
        The predicted beats of the same videos (to count events and false events).
    dice : (T,) float array, optional
        Per-frame Dice of all frames; None or empty when no masks were compared.
    phases : MaskScores, optional
        Dice and area error at the ED-like and ES-like frames (`mask_scores.phase_scores`,
        `pooled_phase_scores`); None: NaN.
    n_videos : int
        Number of videos summarised.
    """
    c = comparison
    n_true_ed = int(np.isfinite(_col(c, "ed_time_s_true")).sum())
    n_true_es = int(np.isfinite(_col(c, "es_time_s_true")).sum())
    hit_ed = int(np.asarray(c.get("ed_matched", []), dtype=bool).sum())
    hit_es = int(np.asarray(c.get("es_matched", []), dtype=bool).sum())
    n_pred_ed, n_pred_es = count_events(pred_beats)
    n_true = n_true_ed + n_true_es
    ed_err = np.abs(_col(c, "ed_frame_error"))
    es_err = np.abs(_col(c, "es_frame_error"))
    ed_terr = np.abs(_col(c, "ed_time_error_frames"))
    es_terr = np.abs(_col(c, "es_time_error_frames"))
    d = np.zeros(0) if dice is None else np.asarray(dice, dtype=float)

    def abs_err(name: str) -> np.ndarray:
        return np.abs(_col(c, f"{name}_pred") - _col(c, f"{name}_true"))

    def rel_err(name: str) -> np.ndarray:
        return _rel_pct(_col(c, f"{name}_pred"), _col(c, f"{name}_true"))

    def rate(hit: int, total: int) -> float:
        return hit / total if total else math.nan

    return ErrorSummary(
        n_videos=int(n_videos),
        n_frames_dice=int(np.isfinite(d).sum()),
        n_beats_true=len(c),
        n_beats_pred=len(pred_beats),
        n_events_true=n_true,
        n_events_matched=hit_ed + hit_es,
        n_false_events=n_pred_ed + n_pred_es - hit_ed - hit_es,
        edes_detection_rate=rate(hit_ed + hit_es, n_true),
        ed_detection_rate=rate(hit_ed, n_true_ed),
        es_detection_rate=rate(hit_es, n_true_es),
        dice_mean=_stat(d, "mean"),
        dice_median=_stat(d, "median"),
        dice_min=_stat(d, "min"),
        dice_p05=_stat(d, "p05"),
        dice_ed=math.nan if phases is None else phases.dice_ed,
        dice_es=math.nan if phases is None else phases.dice_es,
        area_error_ed_pct=math.nan if phases is None else phases.area_error_ed_pct,
        area_error_es_pct=math.nan if phases is None else phases.area_error_es_pct,
        ed_frame_error_mean=_stat(ed_err, "mean"),
        es_frame_error_mean=_stat(es_err, "mean"),
        edes_frame_error_max=_stat(np.concatenate([ed_err, es_err]), "max"),
        ed_time_error_frames_mean=_stat(ed_terr, "mean"),
        es_time_error_frames_mean=_stat(es_terr, "mean"),
        edes_time_error_frames_max=_stat(np.concatenate([ed_terr, es_terr]), "max"),
        hr_abs_err_bpm_median=_stat(abs_err("hr_bpm"), "median"),
        hr_rel_err_pct_median=_stat(rel_err("hr_bpm"), "median"),
        ef_abs_err_median=_stat(abs_err("ef_pct"), "median"),
        fs_minor_abs_err_median=_stat(abs_err("fs_minor_pct"), "median"),
        fs_major_abs_err_median=_stat(abs_err("fs_major_pct"), "median"),
        fac_abs_err_median=_stat(abs_err("fac_pct"), "median"),
        edv_rel_err_pct_median=_stat(rel_err("edv_pl"), "median"),
        esv_rel_err_pct_median=_stat(rel_err("esv_pl"), "median"),
    )
