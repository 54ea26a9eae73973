"""One image file -> an array: the reader of frame folders, training pairs and scripts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile

from .errors import VideoError

TIFF_SUFFIXES = (".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """One image file -> (H, W) or (H, W, 3) RGB array in its own dtype; alpha is dropped.

    TIFF through tifffile, anything else through OpenCV. An unreadable file or a shape that
    is not an image is a VideoError (a ValueError) naming the file.
    """
    path = Path(path)
    image: np.ndarray | None
    if path.suffix.lower() in TIFF_SUFFIXES:
        try:
            image = tifffile.imread(path)
        except Exception as exc:  # tifffile raises many kinds for a broken file
            raise VideoError(f"{path}: not a readable image ({exc})") from None
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise VideoError(f"{path}: not a readable image")
        if image.ndim == 3:
            code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
            image = cv2.cvtColor(image, code)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim not in (2, 3):
        raise VideoError(f"{path}: unsupported image shape {image.shape}")
    return image
