"""`report.html`: one self-contained page per run, for a biologist to read and to share.

Everything is in the file: figures are embedded as base64 PNG, the style sheet is inline,
there is no script and nothing is fetched, so it opens from disk with no server and no
network. It holds, in order: the run's counts; heart rate and EF per `--group-by` group
(one point per video); the plate heat map where wells are known (OUT/plate.png); every
video flagged by QC (or failed, or with a finding) with its reasons and thumbnails of its
trace and montage, linked to the full-size OUT/<video>/trace.png and montage.png; the
summary table; and the QC thresholds used.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import pandas as pd

from .. import __version__
from ..config import QCConfig
from ..io.atomic import write_text_atomic
from ..qc import metrics_from_row, quality_flags
from ..schema import USABLE_STATUSES
from .figure import agg_figure, png_bytes

log = logging.getLogger(__name__)

USABLE = USABLE_STATUSES
THUMB_WIDTH = 440  # px, embedded trace/montage thumbnails of flagged videos
TABLE_COLUMNS = (  # (summary column, heading, decimals)
    ("n_beats", "beats", 0),
    # the statistic the QC's hr_mismatch compares: median beat interval, fused train vs masks
    ("hr_bpm_median", "HR median (bpm)", 1),
    ("hr_bpm_segmentation_median", "HR masks (median)", 1),
    ("hr_bpm_intensity", "HR model-free", 1),
    ("sdnn_ms", "SDNN (ms)", 1),
    ("ef_pct", "EF (%)", 1),
    ("fs_minor_pct", "FS minor (%)", 1),
    ("edv_pl", "EDV (pl)", 1),
    ("esv_pl", "ESV (pl)", 1),
)
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em;
 color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
td.text,th.text{text-align:left}
tr.failed td{background:#fde2e2}tr.flagged td{background:#fff1cc}tr.finding td{background:#e6f0ff}
.counts span{display:inline-block;margin-right:1.2em;padding:.2em .6em;border-radius:4px;
 background:#eee}
.video{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.8em 0}
.video img{max-width:100%;margin-right:.6em;border:1px solid #eee}
.video ul{margin:.3em 0}
figure{margin:.5em 0}img.figure{max-width:100%}
.muted{color:#777}
"""


def write_report(summary: pd.DataFrame, out_dir: str | Path, *, group_by: Sequence[str] = (),
                 meta: Sequence[str] = (), qc: QCConfig | None = None,
                 path: str | Path | None = None) -> Path:
    """Write the run's report.html (default `out_dir/report.html`) and return its path.

    summary : the run's summary.csv table; per-video figures are read from out_dir/<video>/.
    group_by : summary columns whose values make the per-condition groups.
    meta : metadata columns, shown in the tables after the video name.
    qc : thresholds the run used, to state the reasons of each flag.
    """
    out_dir = Path(out_dir)
    path = Path(path) if path is not None else out_dir / "report.html"
    text = render_report(summary, out_dir, group_by=group_by, meta=meta, qc=qc)
    return write_text_atomic(path, text)  # never a half-written report


def render_report(summary: pd.DataFrame, out_dir: Path, *, group_by: Sequence[str] = (),
                  meta: Sequence[str] = (), qc: QCConfig | None = None) -> str:
    """The report as one HTML string (see the module docstring)."""
    qc = qc or QCConfig()
    rows = [dict(r) for _, r in summary.iterrows()]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>medaka_heart report: {_e(out_dir.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>medaka_heart report: {_e(out_dir.name)}</h1>",
        f'<p class="muted">medaka_heart {_e(__version__)}, written '
        f"{datetime.now().isoformat(timespec='seconds')}; figures of each video are in "
        "its folder beside this file.</p>",
        _counts(rows),
        _conditions_section(summary, group_by),
        _plate_section(out_dir),
        _flagged_section(rows, out_dir, meta, qc),
        _table_section(rows, out_dir, meta),
        _thresholds_section(qc),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def row_state(row: Mapping[str, Any]) -> str:
    """'failed', 'flagged' (a QC flag), 'finding' (only findings) or 'ok'."""
    if row.get("status") not in USABLE:
        return "failed"
    if str(row.get("qc_pass")).lower() == "false":
        return "flagged"
    return "finding" if _text(row.get("qc_findings")) else "ok"


def flag_reasons(row: Mapping[str, Any], qc: QCConfig) -> list[str]:
    """One line per QC flag and finding named in the row: its reason, with the numbers."""
    named = [n for key in ("qc_flags", "qc_findings") for n in _text(row.get(key)).split(";") if n]
    messages = {f.name: f.message for f in quality_flags(metrics_from_row(row), qc)}
    return [f"{name}: {messages[name]}" if name in messages else name for name in named]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(value: Any) -> str:
    """A table cell as text; '' for missing values."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return "" if pd.isna(value) else str(value)


def _number(value: Any, decimals: int) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{x:.{decimals}f}" if np.isfinite(x) else ""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, css: str = "figure") -> str:
    return f'<img class="{css}" alt="{_e(alt)}" src="{_data_uri(png)}">'


def thumbnail_png(path: Path, width: int = THUMB_WIDTH) -> bytes | None:
    """A PNG image file shrunk to `width` px (kept as is if narrower); None if missing or
    unreadable."""
    if not path.is_file():  # e.g. a run with --no-plots
        return None
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(image, (width, max(1, round(h * width / w))),
                           interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", image)
    return encoded.tobytes() if ok else None


def _counts(rows: list[dict]) -> str:
    states = [row_state(r) for r in rows]
    reused = sum(r.get("status") in ("reused", "skipped") for r in rows)
    findings = sum(bool(_text(r.get("qc_findings"))) for r, s in zip(rows, states, strict=True)
                   if s != "failed")
    items = [f"{len(rows)} video(s)",
             f"{len(rows) - states.count('failed')} analysed"
             + (f" ({reused} from an earlier run)" if reused else ""),
             f"{states.count('failed')} failed",
             f"{states.count('flagged')} flagged by QC",
             f"{states.count('ok') + states.count('finding')} pass QC",
             f"{findings} with findings"]
    return '<p class="counts">' + "".join(f"<span>{_e(i)}</span>" for i in items) + "</p>"


def _group_labels(summary: pd.DataFrame, group_by: Sequence[str]) -> pd.Series:
    if not group_by:
        return pd.Series("all videos", index=summary.index)
    parts = [summary[g].astype("string").fillna("") for g in group_by]
    label = parts[0]
    for p in parts[1:]:
        label = label + " / " + p
    return label


def conditions_figure(summary: pd.DataFrame, group_by: Sequence[str] = ()) -> bytes | None:
    """PNG of heart rate and EF per group, one point per analysed video; None with fewer than
    two (nothing to compare: the video's own figures say it all).

    Filled points passed QC, open red ones did not; the black bar is the group's mean and SD.
    """
    usable = summary[summary["status"].isin(USABLE)]
    if len(usable) < 2:
        return None
    labels = _group_labels(usable, group_by)
    groups = sorted(labels.unique())
    passed = np.array([row_state(dict(r)) != "flagged" for _, r in usable.iterrows()])
    width = min(16.0, 3.0 + 0.55 * len(groups))
    fig = agg_figure(2 * width, 3.6)
    rng = np.random.default_rng(0)  # the same jitter every time
    for ax, (metric, label) in zip(fig.subplots(1, 2),
                                   (("hr_bpm", "heart rate (bpm)"), ("ef_pct", "EF (%)")),
                                   strict=True):
        values = pd.to_numeric(usable[metric], errors="coerce").to_numpy(dtype=float)
        for k, g in enumerate(groups):
            sel = (labels == g).to_numpy() & np.isfinite(values)
            x = k + rng.uniform(-0.18, 0.18, sel.sum())
            ok = passed[sel]
            ax.plot(x[ok], values[sel][ok], "o", color="tab:blue", ms=5, alpha=0.8)
            ax.plot(x[~ok], values[sel][~ok], "o", mfc="none", mec="tab:red", ms=6)
            if sel.sum():
                v = values[sel]
                sd = v.std(ddof=1) if v.size > 1 else 0.0
                ax.errorbar(k + 0.3, v.mean(), yerr=sd, fmt="_", color="k", ms=12, capsize=3)
        ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 4 else 0,
                      ha="right" if len(groups) > 4 else "center", fontsize=8)
        ax.set_ylabel(label)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    title = "per " + " / ".join(group_by) if group_by else "all analysed videos"
    fig.suptitle(f"{title} (filled: QC pass, open red: flagged; bar: mean and SD)", fontsize=9)
    return png_bytes(fig)


def _conditions_section(summary: pd.DataFrame, group_by: Sequence[str]) -> str:
    png = conditions_figure(summary, group_by)
    if png is None:
        return ""
    heading = "Heart rate and EF per " + ", ".join(group_by) if group_by else "Heart rate and EF"
    return f"<h2>{_e(heading)}</h2><figure>{_img(png, heading)}</figure>"


def _plate_section(out_dir: Path) -> str:
    plate = out_dir / "plate.png"
    if not plate.is_file():
        return ""
    return f"<h2>Plate</h2><figure>{_img(plate.read_bytes(), 'plate heat map')}</figure>"


def _links(video: str, out_dir: Path) -> str:
    links = []
    for name in ("trace.png", "montage.png", "overlay.avi"):
        if (out_dir / video / name).is_file():
            links.append(f'<a href="{_e(quote(video))}/{name}">{name.split(".")[0]}</a>')
    return " ".join(links)


def _flagged_section(rows: list[dict], out_dir: Path, meta: Sequence[str], qc: QCConfig) -> str:
    flagged = [r for r in rows if row_state(r) != "ok"]
    parts = [f"<h2>Videos to look at ({len(flagged)})</h2>"]
    if not flagged:
        parts.append("<p>None: every video was analysed and passed QC.</p>")
        return "\n".join(parts)
    for r in flagged:
        video = _text(r.get("video"))
        state = row_state(r)
        where = ", ".join(f"{m} {_text(r.get(m))}" for m in meta if _text(r.get(m)))
        head = f'<div class="video" id="{_e(quote(video))}"><b>{_e(video)}</b> ({_e(state)}'
        head += f"; {_e(where)})" if where else ")"
        reasons = ([f"error: {_text(r.get('error'))}"] if state == "failed"
                   else flag_reasons(r, qc))
        body = "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in reasons) + "</ul>"
        thumbs = []
        for name in ("trace.png", "montage.png"):
            png = thumbnail_png(out_dir / video / name) if video else None
            if png is not None:
                href = f"{_e(quote(video))}/{name}"
                thumbs.append(f'<a href="{href}">{_img(png, f"{video} {name}", "thumb")}</a>')
        links = _links(video, out_dir)
        parts.append(head + body + "".join(thumbs)
                     + (f"<div>full size: {links}</div>" if links else "") + "</div>")
    return "\n".join(parts)


def _table_section(rows: list[dict], out_dir: Path, meta: Sequence[str]) -> str:
    head = ["video", *meta, "status", "QC", "HR from", *(h for _, h, _ in TABLE_COLUMNS),
            "figures"]
    text_cols = {"video", *meta, "status", "QC", "HR from", "figures"}
    out = ["<h2>All videos</h2>", '<table id="summary"><thead><tr>']
    out += [f'<th class="{"text" if h in text_cols else "num"}">{_e(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for r in rows:
        state = row_state(r)
        video = _text(r.get("video"))
        if state == "failed":
            verdict = _text(r.get("error"))
        else:
            verdict = "; ".join(x for x in (_text(r.get("qc_flags")), _text(r.get("qc_findings")))
                                if x) or ("pass" if _text(r.get("qc_pass")) else "")
        cells = [f'<td class="text">{_e(video)}</td>']
        cells += [f'<td class="text">{_e(_text(r.get(m)))}</td>' for m in meta]
        cells += [f'<td class="text">{_e(_text(r.get("status")))}</td>',
                  f'<td class="text">{_e(verdict)}</td>']
        cells.append(f'<td class="text">{_e(_text(r.get("hr_source")))}</td>')
        cells += [f"<td>{_number(r.get(c), d)}</td>" for c, _, d in TABLE_COLUMNS]
        cells.append(f'<td class="text">{_links(video, out_dir) if video else ""}</td>')
        out.append(f'<tr class="{state}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _thresholds_section(qc: QCConfig) -> str:
    items = "".join(f"<tr><td class=\"text\">{_e(k)}</td><td>{_e(v)}</td></tr>"
                    for k, v in vars(qc).items())
    return ("<h2>QC thresholds</h2><p>From the <code>[qc]</code> section of the configuration; "
            "see the README for what each flag means. Findings (irregular_rhythm) do not fail "
            f"QC.</p><table>{items}</table>")
