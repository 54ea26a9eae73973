"""Real-appearance table of a segmenter: videos made from real hand-drawn hearts, scored.

Usage::

    python scripts/real_appearance.py --real ../shared/real [--model MODEL] [--json out.json]
        [--analyze-option=--no-self-adapt]

For each of the two real HeartSeg outline sequences (``lateral_mask_sequences``), the real
HeartSeg frame is animated with ``animate_frame.py --mask-sequence`` into a 10 s loop and a
21-frame clip at 15 frames/s. Each video is analysed twice in a fresh process, as a user does
(``analyze --save-masks``, and ``analyze --masks`` on its truth masks), and scored:

- Dice mean, at ED-like and ES-like frames, and the area errors there (`mask_scores`: the
  fifth of the frames with the largest / smallest true area);
- EF error: |EF of the model's masks - EF of the truth masks| (points), both measured by the
  same pipeline (fed true masks of real hearts it gets EF within about 1 point); n/a where
  the pipeline measures no beat (the loop of sequence 0000 jumps where it wraps, and its
  truth masks give no measured beat either); range-EF error: the same for the EF of the
  volume trace's extremes (`range_pct`), which every video has; area change of the masks
  and of the truth (the same for the area);
- HR error: the summary heart rate against the one measured on the truth masks (%);
- QC: whether the video passes the tool's own quality control.

Then the two real recordings without manual truth (`real_recordings`): the FEHAT 96-well
recording and the zebrafish close-up, analysed with --save-masks; their heart rate and the
masks' own rate against the references, how many frames have a mask, how much its area
changes, and ``overlay.png`` in each one's work folder (six frames, the mask outlined) for a
person to check where it is. Last, the real frame alone, a still (`still_frame`).

`evaluate_model` is used by `learning_curve.py` too. The animated videos are rendered once
into ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import bench_rhythm  # noqa: E402  (a sibling script)

from medaka_heart.io.masks import mask_chunks  # noqa: E402
from medaka_heart.mask_scores import frame_agreement, mask_scores  # noqa: E402

log = logging.getLogger("real_appearance")
FPS, PIXEL_UM = 15.0, 1.115  # HeartSeg: 15 frames/s, 1.115 um per pixel
LOOP_SECONDS, CLIP_SECONDS = 10.0, 1.4


def test_videos(real: Path, work: Path) -> list[dict]:
    """The animated videos: sequence, kind, video path, truth-mask path."""
    videos = []
    for name, folder in bench_rhythm.sequences(real, work / "outlines").items():
        for kind, seconds, seed in (("loop", LOOP_SECONDS, 0), ("clip", CLIP_SECONDS, 1)):
            out = work / f"{name}_{kind}"
            if not (out / "frame_0001.avi").is_file():
                bench_rhythm.animate(real, out, "--fps", f"{FPS:g}", "--seconds", f"{seconds:g}",
                                     "--mask-sequence", str(folder), "--seed", str(seed))
            videos.append({"sequence": name, "kind": kind, "video": out / "frame_0001.avi",
                           "masks": out / "frame_0001_mask.tif"})
    return videos


def _analyze(video: Path, out: Path, *extra: str, reuse: bool = False) -> pd.Series:
    if reuse and (out / "summary.csv").is_file():
        return pd.read_csv(out / "summary.csv").iloc[0]
    cmd = [sys.executable, "-m", "medaka_heart", "analyze", str(video), "-o", str(out),
           "--fps", f"{FPS:g}", "--pixel-size", f"{PIXEL_UM:g}", "--workers", "1", "--no-plots",
           "--no-progress", "--force", *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return pd.read_csv(out / "summary.csv").iloc[0]


def _stack(path: Path) -> np.ndarray:
    return np.concatenate(list(mask_chunks(path, 256, None)))


def _error(pred: float, true: float, relative: bool) -> float:
    if not (math.isfinite(pred) and math.isfinite(true)):
        return math.nan
    return abs(pred - true) / true * 100.0 if relative else abs(pred - true)


def range_pct(frames_csv: Path, column: str) -> float:
    """How much a per-frame quantity changes over the video: (X95 - X5) / X95 of its frames'
    values (percentiles), %. Of `volume_pl` it is the range EF, which needs no beat detection,
    so it exists for every video and clip; of `area_um2`, the area change."""
    values = pd.read_csv(frames_csv)[column].to_numpy(float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return math.nan
    high, low = np.percentile(values, [95, 5])
    return float((high - low) / high * 100.0) if high > 0 else math.nan


def evaluate_model(model: Path | None, videos: list[dict], work: Path, *,
                   reuse: bool = False, options: tuple[str, ...] = ()) -> list[dict]:
    """One row per video: Dice (mean/ED/ES), area errors, EF and HR errors, QC.

    reuse : keep analyses already in `work` (resume an interrupted run).
    options : more `analyze` options for the model's runs (e.g. --no-self-adapt)."""
    rows = []
    extra = ([] if model is None else ["--model", str(model)]) + list(options)
    for v in videos:
        tag = f"{v['sequence']}_{v['kind']}"
        pred = _analyze(v["video"], work / "pred" / tag, "--save-masks", *extra, reuse=reuse)
        truth = _analyze(v["video"], work / "truth" / tag, "--masks", str(v["masks"]),
                         reuse=reuse)
        tables = [work / part / tag / "frame_0001" / "frames.csv" for part in ("pred", "truth")]
        range_ef = [range_pct(table, "volume_pl") for table in tables]
        scores = mask_scores(_stack(work / "pred" / tag / "frame_0001" / "masks.tif"),
                             _stack(v["masks"]))
        rows.append({"sequence": v["sequence"], "kind": v["kind"], **scores.to_dict(),
                     "ef_pct": float(pred["ef_pct"]), "ef_pct_truth": float(truth["ef_pct"]),
                     "ef_err_points": _error(float(pred["ef_pct"]), float(truth["ef_pct"]),
                                             False),
                     "range_ef_err_points": _error(*range_ef, False),
                     "area_change_pct": range_pct(tables[0], "area_um2"),
                     "area_change_pct_truth": range_pct(tables[1], "area_um2"),
                     "hr_bpm": float(pred["hr_bpm"]), "hr_bpm_truth": float(truth["hr_bpm"]),
                     "hr_err_pct": _error(float(pred["hr_bpm"]), float(truth["hr_bpm"]), True),
                     "qc_pass": bool(pred["qc_pass"])})
        log.info("%s: %s", tag, {k: rows[-1][k] for k in ("dice_mean", "dice_es",
                                                          "ef_err_points", "qc_pass")})
    return rows


def real_recordings(real: Path, model: Path | None, work: Path,
                    options: tuple[str, ...] = ()) -> list[dict]:
    """The two real recordings without manual truth, analysed with --save-masks: the headline
    and the masks' own heart rate against the reference (FEHAT and an FFT agree on about 170
    bpm for the 96-well recording; 23.7 frames per beat for the zebrafish close-up at a
    nominal 30 frames/s), how much of the video has a mask, its area change, and an overlay
    sheet (``overlay.png``: six frames, the mask outlined) to look at where it is."""
    extra = ([] if model is None else ["--model", str(model)]) + list(options)
    cases = [("FEHAT 96-well recording", real / "fehat_medaka_96well", None,
              bench_rhythm.FEHAT_REFERENCE_BPM),
             ("zebrafish close-up", real / "zebrafish_heart_closeup", bench_rhythm.ZEBRAFISH_FPS,
              60.0 * bench_rhythm.ZEBRAFISH_FPS / bench_rhythm.ZEBRAFISH_FRAMES_PER_BEAT)]
    rows = []
    for name, source, fps, reference in cases:
        out = work / source.name
        cmd = [sys.executable, "-m", "medaka_heart", "analyze", str(source), "-o", str(out),
               "--save-masks", "--workers", "1", "--no-plots", "--no-progress", "--force",
               *(["--fps", f"{fps:g}"] if fps else []), *extra]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        summary = pd.read_csv(out / "summary.csv").iloc[0]
        video = out / str(summary["video"])
        masks = _stack(video / "masks.tif")
        area = masks.sum(axis=(1, 2))
        overlay_sheet(source, masks, out / "overlay.png")
        rows.append({"recording": name, "reference_bpm": reference,
                     "hr_bpm": float(summary["hr_bpm"]),
                     "hr_err_pct": _error(float(summary["hr_bpm"]), reference, True),
                     "hr_bpm_masks": float(summary["hr_bpm_segmentation"]),
                     "hr_masks_err_pct": _error(float(summary["hr_bpm_segmentation"]),
                                                reference, True),
                     "frames_with_mask": float(np.mean(area > 0)),
                     "area_change_pct": range_pct(video / "frames.csv", "area_um2"),
                     "qc_pass": bool(summary["qc_pass"]), "overlay": str(out / "overlay.png")})
        log.info("%s: %s", name, rows[-1])
    return rows


def still_frame(real: Path, model: Path | None) -> dict:
    """The real HeartSeg frame alone (no video, so no beat): the model's mask against its
    hand-drawn one (`Segmenter.segment_still`), with its confidence (checked against its mirror
    images) and the network's own."""
    import tifffile

    from medaka_heart.segment import Segmenter

    folder = real / "heartseg_hatchling"
    image = tifffile.imread(folder / "frame_0001.tif")
    truth = tifffile.imread(folder / "frame_0001_mask.tif")
    truth = (truth.max(axis=-1) if truth.ndim == 3 else truth) > 0
    segmenter = Segmenter(model, threads=2)
    found = segmenter.segment_still(image)
    mask = found.masks[0]
    return {"dice": float(frame_agreement(mask, truth).dice[0]),
            "area_ratio": float(mask.sum() / truth.sum()),
            "confidence": float(found.confidence[0]),
            "network_confidence": float(segmenter.segment_still(image, check=False)
                                        .confidence[0])}


def overlay_sheet(source: Path, masks: np.ndarray, path: Path, count: int = 6) -> None:
    """`count` evenly spread frames of a video, each mask outlined in red, side by side (PNG,
    each frame 300 px wide)."""
    import cv2

    from medaka_heart.io.video import open_video

    # (frame order only: the ACQUIFER names number frames by their time stamps)
    frames = np.concatenate(list(open_video(source, numbering=False).chunks(64)))
    tiles = []
    for i in np.linspace(0, len(masks) - 1, count).round().astype(int):
        frame = np.asarray(frames[i], dtype=np.float32)
        gray = frame if frame.ndim == 2 else frame.mean(axis=-1)
        low, high = np.percentile(gray, [0.5, 99.5])
        tile = cv2.cvtColor(np.clip((gray - low) / max(high - low, 1e-6) * 255, 0, 255)
                            .astype(np.uint8), cv2.COLOR_GRAY2BGR)
        contours, _ = cv2.findContours(masks[i].astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 0, 255), max(1, tile.shape[1] // 200))
        scale = 300.0 / tile.shape[1]
        tiles.append(cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    height = min(t.shape[0] for t in tiles)
    cv2.imwrite(str(path), np.concatenate([t[:height] for t in tiles], axis=1))


def _cell(value: float, fmt: str) -> str:
    return "n/a" if not math.isfinite(value) else fmt.format(value)


def _table(header: list[str], rows: list[dict], cells: Callable[[dict], list[str]]) -> str:
    """A markdown table: `header`, then `cells(row)` for each row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def recordings_markdown(rows: list[dict]) -> str:
    """One line per real recording."""
    return _table(["recording", "reference (bpm)", "HR / masks' own HR (bpm)", "error (%)",
                   "frames with a mask", "mask area change (%)", "QC"], rows, lambda r: [
        r["recording"], f"{r['reference_bpm']:.1f}",
        f"{_cell(r['hr_bpm'], '{:.1f}')} / {_cell(r['hr_bpm_masks'], '{:.1f}')}",
        f"{_cell(r['hr_err_pct'], '{:.2f}')} / {_cell(r['hr_masks_err_pct'], '{:.2f}')}",
        f"{r['frames_with_mask']:.2f}", _cell(r["area_change_pct"], "{:.0f}"),
        "pass" if r["qc_pass"] else "fail"])


def markdown(rows: list[dict]) -> str:
    """One line per video."""
    return _table(["outline sequence", "video", "Dice mean / ED / ES", "area error ED / ES (%)",
                   "area change, masks / truth (%)", "EF error (points)",
                   "range-EF error (points)", "HR error (%)", "QC"], rows, lambda r: [
        r["sequence"], r["kind"],
        " / ".join(_cell(r[k], "{:.3f}") for k in ("dice_mean", "dice_ed", "dice_es")),
        " / ".join(_cell(r[k], "{:+.0f}") for k in ("area_error_ed_pct", "area_error_es_pct")),
        " / ".join(_cell(r[k], "{:.0f}") for k in ("area_change_pct", "area_change_pct_truth")),
        _cell(r["ef_err_points"], "{:.1f}"), _cell(r["range_ef_err_points"], "{:.1f}"),
        _cell(r["hr_err_pct"], "{:.2f}"), "pass" if r["qc_pass"] else "fail"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="folder laid out as shared/real")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: shipped)")
    parser.add_argument("--work", type=Path, default=Path("real_appearance_work"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep analyses already in --work")
    parser.add_argument("--analyze-option", dest="options", action="append", default=[],
                        metavar="OPTION", help="an `analyze` option for the model's runs, e.g. "
                        "--analyze-option=--no-self-adapt (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    videos = test_videos(args.real, args.work / "videos")
    options = tuple(args.options)
    rows = evaluate_model(args.model, videos, args.work / "runs", reuse=args.reuse,
                          options=options)
    print(markdown(rows))
    recordings = real_recordings(args.real, args.model, args.work / "recordings", options)
    print()
    print(recordings_markdown(recordings))
    still = still_frame(args.real, args.model)
    print(f"\nstill frame (no beat): Dice {still['dice']:.3f}, mask area "
          f"{still['area_ratio']:.2f} x the truth's, confidence {still['confidence']:.2f} "
          f"(checked against its mirror images; the network's own "
          f"{still['network_confidence']:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model or "shipped"),
                                         "analyze_options": list(options), "rows": rows,
                                         "recordings": recordings, "still": still},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
