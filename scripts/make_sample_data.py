"""Write the bundled sample data: three small phantom videos with exact truth, and the README
figure (one frame with its ventricle outline).

    python scripts/make_sample_data.py            # writes sample_data/ and docs/sample_frame.png

Everything is drawn from a fixed seed, so re-running it rewrites the same videos.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np

from medaka_heart.phantom import load_preset, make_phantom, write_synth_set
from medaka_heart.phantom.writer import video_seed

SEED = 2024
ROOT = Path(__file__).resolve().parents[1]


def fixed(preset, **values):
    """The preset with some ranges pinned to one value."""
    return dataclasses.replace(preset, **{k: (float(v), float(v)) for k, v in values.items()})


def sample_frame_png(preset, seed: int, path: Path) -> None:
    """The middle frame of a phantom with its ventricle mask outlined in green."""
    phantom = make_phantom(preset, seed=seed)
    i = int(np.argmax(phantom.frame_table()["volume_pl"].to_numpy()))  # an end-diastole
    image = cv2.cvtColor(phantom.image(i), cv2.COLOR_RGB2BGR)
    contours, _ = cv2.findContours(
        phantom.mask(i).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(image, contours, -1, (0, 230, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_data")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "sample_frame.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    stereo = fixed(load_preset("typical"), duration_s=6.0, fps=15.0)
    hts = fixed(
        load_preset("hts"),
        duration_s=2.5,
        fps=10.0,
        size_px=400,
        pixel_size_um=2.6,
        hr_bpm=150,
        photons=20000.0,
        read_noise=0.002,
    )
    write_synth_set(args.out, 2, SEED, stereo, progress=False, quality=75)
    for video in write_synth_set(args.out, 1, SEED, hts, progress=False, quality=80):
        video.with_suffix(".tif").unlink(missing_ok=True)  # keep the bundle small: 8-bit AVI only
    sample_frame_png(stereo, video_seed(SEED, 0), args.figure)


if __name__ == "__main__":
    main()
