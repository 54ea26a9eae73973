"""Mask stacks: reading user/truth masks as bool chunks, and streaming masks.tif out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from .video import MAX_SHORT_FRACTION, MAX_SHORT_FRAMES, VideoError, open_video


def mask_chunks(path: str | Path, chunk_frames: int, expected: tuple[int, int, int] | None = None,
                *, numbering: bool = True) -> Iterator[np.ndarray]:
    """(t, H, W) bool chunks of a mask stack or folder; any nonzero pixel (any channel) is True.

    `expected` = (n_frames, H, W) of the video the masks belong to (n_frames as declared: as
    many masks, or as many fewer as may not decode, see `io.video.MAX_SHORT_FRACTION`); a
    mismatch is a VideoError (the pipeline checks the decoded count chunk by chunk).
    `numbering`: as in `io.video.open_video` (False for annotations compared frame by frame).
    """
    reader = open_video(path, numbering=numbering)
    info = reader.info
    if expected is not None:
        n, h, w = expected
        if (info.height, info.width) != (h, w):
            raise VideoError(f"{path}: masks are {info.width}x{info.height} px but the video is "
                             f"{w}x{h}")
        short = n - info.n_frames  # a container may declare a few frames that never decode
        if short < 0 or short > max(MAX_SHORT_FRAMES, MAX_SHORT_FRACTION * n):
            raise VideoError(f"{path}: {info.n_frames} masks for a video of {n} frames")
    for chunk in reader.chunks(chunk_frames):
        # numpy stubs type any(axis=-1) as maybe a scalar; of a 4-D chunk it is an array
        yield chunk.any(axis=-1) if chunk.ndim == 4 else chunk != 0  # type: ignore[misc]


def read_label_stack(path: str | Path, what: str = "masks") -> np.ndarray:
    """(T, H, W) labels of a single-channel TIFF of one page (H, W) or of T pages, whole in
    memory, of its own dtype (nonzero = ventricle). Raises ValueError naming the file for a
    broken TIFF or another shape (`what` names the content in that message)."""
    try:
        labels = np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many kinds on a broken file
        raise ValueError(f"{path}: not a readable TIFF ({exc})") from None
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"{path}: {what} are (T, H, W) or (H, W), got shape {labels.shape}")
    return labels


class MaskStackWriter:
    """Appends (t, H, W) bool chunks to a uint8 0/255 multi-page TIFF (zlib), one page per frame."""

    def __init__(self, path: str | Path):
        self._tif = tifffile.TiffWriter(path)

    def write(self, masks: np.ndarray) -> None:
        for mask in np.asarray(masks, dtype=bool):
            self._tif.write(mask.astype(np.uint8) * 255, compression="zlib",
                            photometric="minisblack", metadata=None)

    def close(self) -> None:
        self._tif.close()

    def __enter__(self) -> MaskStackWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
