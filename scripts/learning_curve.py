"""Learning curve of `medaka-heart adapt`: held-out real-appearance scores against annotated frames.

Usage::

    python scripts/learning_curve.py --real ../shared/real --json docs/learning_curve.json

For each of the two real HeartSeg outline sequences in turn: the real frame animated with that
sequence's outlines (a 10 s loop at 15 frames/s, its own noise seed) is the lab's recording;
1, 3, 10, 20 and 40 of its frames, evenly spaced, are "annotated" (written as image/mask PNG
pairs, as a user would export them) and the shipped model is adapted on them
(``medaka-heart adapt --holdout 0``: all of them train). Each adapted model is then scored
with `real_appearance.evaluate_model` on the videos of the *other* sequence (a loop and a
21-frame clip), which no adapt run ever saw. The sequences are swapped, so each is held out
once. Also reported: the wall time of each adapt run on this machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import bench_rhythm  # noqa: E402  (sibling scripts)
import real_appearance  # noqa: E402

from medaka_heart.adapt import DEFAULT_MINUTES  # noqa: E402
from medaka_heart.io.masks import mask_chunks  # noqa: E402
from medaka_heart.io.video import read_all  # noqa: E402

log = logging.getLogger("learning_curve")
SIZES = (1, 3, 10, 20, 40)
ANNOTATED_SEED = 2  # noise seed of the "lab recording" (the test videos use 0 and 1)


def lab_recording(real: Path, outlines: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, masks (T, H, W) bool) of the annotated recording."""
    if not (out / "frame_0001.avi").is_file():
        bench_rhythm.animate(real, out, "--fps", f"{real_appearance.FPS:g}", "--seconds",
                             f"{real_appearance.LOOP_SECONDS:g}", "--mask-sequence",
                             str(outlines), "--seed", str(ANNOTATED_SEED))
    frames = read_all(out / "frame_0001.avi")
    masks = np.concatenate(list(mask_chunks(out / "frame_0001_mask.tif", 256, None)))
    return frames, masks


def write_pairs(frames: np.ndarray, masks: np.ndarray, k: int, out: Path) -> list[int]:
    """Write k evenly spaced frames as frame_NNNN.png + frame_NNNN_mask.png; their indices."""
    out.mkdir(parents=True, exist_ok=True)
    picked = sorted({int(i) for i in np.round(np.linspace(0, len(frames) - 1, k))})
    for i in picked:
        cv2.imwrite(str(out / f"frame_{i:04d}.png"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / f"frame_{i:04d}_mask.png"), masks[i].astype(np.uint8) * 255)
    return picked


def adapt(pairs: Path, model: Path, minutes: float, seed: int, reuse: bool = False) -> float:
    """Run ``medaka-heart adapt`` in a fresh process; its wall time, s (with `reuse` and a
    model already there: the time its adapt.json records)."""
    if reuse and (model / "adapt.json").is_file():
        return float(json.loads((model / "adapt.json").read_text())["seconds"])
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medaka_heart", "adapt", str(pairs), "-o", str(model),
                    "--holdout", "0", "--minutes", f"{minutes:g}", "--seed", str(seed),
                    "--no-progress"], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def _median(rows: list[dict], key: str, kind: str) -> float:
    values = [r[key] for r in rows if r["kind"] == kind]
    return float(np.nanmedian(values)) if values else float("nan")


def markdown(curve: list[dict]) -> str:
    """One line per (held-out sequence, frames): loop and clip scores, wall time."""
    lines = ["| trained on | frames | adapt wall time (s) | loop Dice mean / ED / ES "
             "| clip Dice mean / ED / ES | EF error (points) loop / clip "
             "| range-EF error (points) loop / clip | HR error (%) loop / clip | QC pass |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in curve:
        rows = c["rows"]

        def trio(kind: str, rows: list[dict] = rows) -> str:
            return " / ".join(f"{_median(rows, k, kind):.3f}"
                              for k in ("dice_mean", "dice_ed", "dice_es"))

        qc = sum(bool(r["qc_pass"]) for r in rows)
        wall = "-" if c["adapt_s"] is None else f"{c['adapt_s']:.0f}"
        lines.append(
            f"| {c['trained_on']} | {c['frames']} | {wall} | {trio('loop')} | {trio('clip')} | "
            f"{_median(rows, 'ef_err_points', 'loop'):.1f} / "
            f"{_median(rows, 'ef_err_points', 'clip'):.1f} | "
            f"{_median(rows, 'range_ef_err_points', 'loop'):.1f} / "
            f"{_median(rows, 'range_ef_err_points', 'clip'):.1f} | "
            f"{_median(rows, 'hr_err_pct', 'loop'):.2f} / "
            f"{_median(rows, 'hr_err_pct', 'clip'):.2f} | {qc}/{len(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="folder laid out as shared/real")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                        help=f"adapt budget per run (default {DEFAULT_MINUTES:g}, adapt's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("learning_curve_work"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="keep models and analyses already in --work (resume, or re-score)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the shipped model's row (0 frames)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    videos = real_appearance.test_videos(args.real, args.work / "videos")
    outlines = bench_rhythm.sequences(args.real, args.work / "outlines")
    curve = []
    for trained_on, folder in outlines.items():
        test = [v for v in videos if v["sequence"] != trained_on]
        if not args.no_baseline:
            rows = real_appearance.evaluate_model(None, test, args.work / f"runs_{trained_on}_0",
                                                  reuse=args.reuse)
            curve.append({"trained_on": trained_on, "frames": 0, "adapt_s": None, "rows": rows})
        frames, masks = lab_recording(args.real, folder, args.work / f"lab_{trained_on}")
        for k in args.sizes:
            tag = f"{trained_on}_{k}"
            picked = write_pairs(frames, masks, k, args.work / "pairs" / tag)
            model = args.work / "models" / tag
            wall = adapt(args.work / "pairs" / tag, model, args.minutes, args.seed, args.reuse)
            rows = real_appearance.evaluate_model(model, test, args.work / f"runs_{tag}",
                                                  reuse=args.reuse)
            curve.append({"trained_on": trained_on, "frames": k, "frame_indices": picked,
                          "adapt_s": wall, "rows": rows})
            log.info("%s: adapt %.0f s\n%s", tag, wall, markdown(curve[-1:]))
            if args.json:  # after every run, so a long curve keeps what it measured
                args.json.write_text(json.dumps({"minutes": args.minutes, "curve": curve},
                                                indent=2) + "\n")
    print(markdown(curve))
    return 0


if __name__ == "__main__":
    sys.exit(main())
