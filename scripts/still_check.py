"""Does a still's confidence say when its mask is wrong? One frame of each video, segmented alone.

Usage::

    python scripts/still_check.py /tmp/bench_acc/data/typical /tmp/bench_acc/data/hard \\
        /tmp/bench_acc/data/hts [--real ../shared/real] [--frame 11] [--json out.json]

Each folder holds videos with their truth beside them (``X.avi`` + ``X.truth/masks.tif``, as
`scripts/benchmark.py --work W` leaves them in ``W/data/<preset>``). Frame ``--frame`` of
each video is segmented as a still (`Segmenter.segment_still`), without and with the check
against its mirror images, and scored against its true mask. With ``--real``, the real
HeartSeg frame is added. A still *fails* where its Dice is below 0.5; a confidence *says so*
where it is below the QC threshold (`QCConfig.min_confidence`). Prints, for the network's own
confidence and for the checked one, how many failed stills it flags and how many good ones.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import tifffile

from medaka_heart.config import QCConfig
from medaka_heart.io.image import read_image
from medaka_heart.io.video import open_video
from medaka_heart.mask_scores import frame_agreement
from medaka_heart.segment import Segmenter

FAILED_BELOW = 0.5  # Dice under which a still's mask counts as wrong


def video_stills(folders: list[Path], frame: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, true mask) of frame `frame` of every video with a truth in `folders`."""
    stills = []
    for folder in folders:
        videos = sorted(p for p in folder.glob("*.avi") if (p.with_suffix(".truth")).is_dir())
        if not videos:
            sys.exit(f"{folder}: no X.avi with an X.truth/ folder")
        for video in videos:
            frames = np.concatenate(list(itertools.islice(
                open_video(video).chunks(frame + 1), frame + 1)))
            truth = tifffile.imread(video.with_suffix(".truth") / "masks.tif", key=frame) > 0
            stills.append((video.stem, frames[frame], truth))
    return stills


def heartseg_still(real: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """The real HeartSeg frame and its hand-drawn mask."""
    folder = real / "heartseg_hatchling"
    truth = read_image(folder / "frame_0001_mask.tif")
    truth = (truth.max(axis=-1) if truth.ndim == 3 else truth) > 0
    return "heartseg_frame_0001", read_image(folder / "frame_0001.tif"), truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--real", type=Path, default=None, help="folder laid out as shared/real")
    parser.add_argument("--frame", type=int, default=11, help="which frame of each video")
    parser.add_argument("--model", default=None, help="model folder (default: shipped)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    stills = video_stills(args.folders, args.frame)
    if args.real is not None:
        stills.append(heartseg_still(args.real))
    segmenter = Segmenter(args.model)
    level = QCConfig().min_confidence
    rows = []
    for name, image, truth in stills:
        plain = segmenter.segment_still(image, check=False)
        checked = segmenter.segment_still(image)
        rows.append({"still": name, "dice": float(frame_agreement(plain.masks[0], truth).dice[0]),
                     "confidence": float(plain.confidence[0]),
                     "checked_confidence": float(checked.confidence[0])})
        print(f"{name}: Dice {rows[-1]['dice']:.3f}, confidence {rows[-1]['confidence']:.2f}, "
              f"checked {rows[-1]['checked_confidence']:.2f}")
    failed = [r for r in rows if r["dice"] < FAILED_BELOW]
    good = [r for r in rows if r["dice"] >= FAILED_BELOW]
    summary = {"stills": len(rows), "failed": len(failed), "level": level}
    for key in ("confidence", "checked_confidence"):
        summary[key] = {"failed_flagged": sum(r[key] < level for r in failed),
                        "good_flagged": sum(r[key] < level for r in good),
                        "correlation_with_dice": float(np.corrcoef(
                            [r["dice"] for r in rows], [r[key] for r in rows])[0, 1])}
        print(f"{key}: flags {summary[key]['failed_flagged']} of {len(failed)} failed stills "
              f"(Dice < {FAILED_BELOW}) and {summary[key]['good_flagged']} of {len(good)} good "
              f"ones (below {level}); correlation with Dice "
              f"{summary[key]['correlation_with_dice']:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
