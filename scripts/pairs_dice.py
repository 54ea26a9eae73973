"""Dice of a segmentation model on annotated image/mask pairs, e.g. the public HeartSeg data.

Usage::

    python scripts/pairs_dice.py HeartSeg-Dataset/ --heartseg           # train_ and test_images
    python scripts/pairs_dice.py folder_with_X.tif_and_X_mask.tif/      # any pairs layout
    python scripts/pairs_dice.py FOLDER --model runs/default/model --csv dice.csv

Pairs are found as the trainer finds them (`medaka_heart.model.data.find_heartseg` or
`find_pairs`: ``images/`` + ``masks/`` folders, or ``X.ext`` beside ``X_mask.ext``). The frames
of one sequence are segmented together, as one chunk of a video (the coarse pass looks at
all of them), then each predicted mask is compared with its annotation (any nonzero pixel is
ventricle). Prints one line per sequence and the mean over all frames.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from medaka_heart.evaluate import dice_per_frame
from medaka_heart.io.image import read_image
from medaka_heart.model.data import PairFiles, find_heartseg, find_pairs
from medaka_heart.segment import Segmenter


def _mask(path: Path) -> np.ndarray:
    mask = read_image(path)
    return (mask.max(axis=-1) if mask.ndim == 3 else mask) > 0


def dice_on_pairs(segmenter: Segmenter, sequences: list[PairFiles]) -> pd.DataFrame:
    """One row per annotated frame: sequence, image, dice, confidence, true_px, pred_px."""
    rows = []
    for seq in sequences:
        frames = np.stack([read_image(p) for p in seq.images])
        truth = np.stack([_mask(p) for p in seq.masks])
        ((_, found),) = segmenter.segment_video([frames])  # one sequence, frame rate unknown
        pred, confidence = found.masks, found.confidence
        dice = dice_per_frame(pred, truth)
        for k, image in enumerate(seq.images):
            rows.append({"sequence": seq.name, "image": image.name, "dice": float(dice[k]),
                         "confidence": float(confidence[k]), "true_px": int(truth[k].sum()),
                         "pred_px": int(pred[k].sum())})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--heartseg", action="store_true",
                        help="HeartSeg layout (train_images/, test_images/)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", type=Path, default=None, help="write the per-frame table here")
    args = parser.parse_args(argv)
    try:
        sequences = find_heartseg(args.root) if args.heartseg else find_pairs(args.root)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    table = dice_on_pairs(Segmenter(args.model, device=args.device, self_adapt=False),
                          sequences)  # the network's own masks
    for name, group in table.groupby("sequence", sort=False):
        print(f"{name}: {len(group)} frames, Dice mean {group.dice.mean():.3f} "
              f"(min {group.dice.min():.3f})")
    print(f"all: {len(table)} frames, Dice mean {table.dice.mean():.3f}, "
          f"median {table.dice.median():.3f}")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
