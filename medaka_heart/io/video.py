"""Streaming video readers: containers via OpenCV, (OME-)TIFF stacks via tifffile, frame folders.

Every reader yields chunks of frames shaped (t, H, W) for grayscale or (t, H, W, 3) for RGB
(with `gray=True`, always (t, H, W): colour decoded straight to luminance, `gray_frames`),
in the file's own dtype (uint8, uint16 or float; NaN/inf read as 0), never the whole video at
once: a chunk holds at most `chunk_frames` frames and `CHUNK_PIXELS` pixels.
Problems are raised as `VideoError` whose message starts with the file name.
"""

from __future__ import annotations

import logging
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from ..preprocess import to_gray
from .errors import VideoError
from .image import TIFF_SUFFIXES, read_image

CONTAINER_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".m4v", ".wmv")
FRAME_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = CONTAINER_SUFFIXES + TIFF_SUFFIXES
CHUNK_PIXELS = 64 * 1024 * 768  # most pixels per chunk: 64 frames of 1024x768, 4 of 4000x3000

log = logging.getLogger(__name__)


# A container's frame count is an estimate for many codecs (H.264/MP4 count from duration x
# rate: a real 64 s consumer recording declares 1943 frames and decodes 1931, 0.6 % short);
# a truncated file loses a large share. Decoding that stops more than this share (and more
# than MAX_SHORT_FRAMES frames) short of the declared count is an error; less is analysed.
MAX_SHORT_FRACTION = 0.05
MAX_SHORT_FRAMES = 2


def _check_shortfall(path: Path, declared: int, decoded: int) -> None:
    """Raise VideoError where decoding stopped far short of the declared frame count."""
    short = declared - decoded
    if short > max(MAX_SHORT_FRAMES, MAX_SHORT_FRACTION * declared):
        raise VideoError(f"{path}: truncated or corrupt: the container declares {declared} "
                         f"frames but only {decoded} could be decoded (more than "
                         f"{100 * MAX_SHORT_FRACTION:g} % short)")
    log.info("%s: %d of the %d frames the container declares decode (its count is an "
             "estimate); all of them are analysed", path, decoded, declared)


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it."""

    path: Path
    n_frames: int
    height: int
    width: int
    fps: float | None  # None: unknown
    fps_source: str  # container | metadata | none
    pixel_size_um: float | None = None
    pixel_size_source: str = "none"
    missing_frames: tuple[int, ...] = ()  # frame indices absent from a numbered folder


def frames_per_chunk(height: int, width: int, chunk_frames: int, n_frames: int | None = None
                     ) -> int:
    """Frames per chunk: `chunk_frames`, fewer for large frames so a chunk holds at most
    `CHUNK_PIXELS` pixels (at least 1 frame); given the video's `n_frames`, the chunks are
    made as even as that allows (70 frames in chunks of at most 64: 35 + 35, not 64 + 6), so
    that no chunk is a short tail (each chunk finds the heart on its own).

    It depends on the frame size and count only, so a video and its mask stack (any dtype
    or channels) are cut into chunks of the same lengths.
    """
    most = max(1, min(int(chunk_frames), CHUNK_PIXELS // max(1, height * width)))
    if not n_frames or n_frames <= most:
        return most
    return -(-n_frames // -(-n_frames // most))


def natural_key(path: Path) -> list:
    """Sort key that orders frame_2 before frame_10."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


GRAY_DTYPES = (np.uint8, np.uint16, np.float32)  # OpenCV converts these to grayscale itself


def gray_frames(frames: np.ndarray) -> np.ndarray:
    """(t, H, W, 3) RGB frames -> (t, H, W) luminance (ITU-R 601 weights, as OpenCV's
    RGB2GRAY) in the same dtype where OpenCV converts it (uint8, uint16, float32), else float32;
    (t, H, W) frames are returned as they are."""
    if frames.ndim == 3:
        return frames
    if frames.dtype not in GRAY_DTYPES:
        return to_gray(frames)
    out = np.empty(frames.shape[:3], dtype=frames.dtype)
    for frame, gray in zip(frames, out, strict=True):
        cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY, dst=gray)
    return out


def _as_frames(array: np.ndarray, path: Path, gray: bool = False) -> np.ndarray:
    """(t, H, W) or (t, H, W, C) with C in {3, 4} -> (t, H, W) or (t, H, W, 3); with `gray`,
    always (t, H, W) (`gray_frames`).

    Non-finite samples of float data (NaN, inf) become 0, as `preprocess.normalise_intensity`
    treats them, so that no consumer of the frames (thumbnails, plots) sees NaN.
    """
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    if array.ndim == 4 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise VideoError(f"{path}: unsupported frame layout {array.shape}")
    return gray_frames(array) if gray else array


MAX_FPS = 10_000.0  # a stated frame rate above this (or <= 0) is not believed


def avi_stated_fps(path: Path) -> float | None:
    """The frame rate an AVI's header states (video stream dwRate / dwScale, else the main
    header's microseconds per frame); NaN where it states none (0); None for a file that is
    not an AVI. OpenCV reports 25 fps for an AVI whose header gives 0, so AVIs are read here.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    at = head.find(b"strh")
    while at >= 0 and head[at + 8 : at + 12] != b"vids":  # the video stream's header
        at = head.find(b"strh", at + 4)
    if at >= 0 and at + 36 <= len(head):
        scale, rate = struct.unpack("<II", head[at + 28 : at + 36])  # dwScale, dwRate
        if scale > 0 and rate > 0:
            return rate / scale
    at = head.find(b"avih")
    if at >= 0 and at + 12 <= len(head):
        (us_per_frame,) = struct.unpack("<I", head[at + 8 : at + 12])
        if us_per_frame > 0:
            return 1e6 / us_per_frame
    return float("nan")


class ContainerReader:
    """AVI/MP4/MOV/... decoded by OpenCV; frames are RGB uint8."""

    def __init__(self, path: Path):
        self.path = path
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise VideoError(f"{path}: not a readable video (OpenCV cannot open it)")
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            ok, frame = cap.read()
            if not ok or frame is None:
                raise VideoError(f"{path}: no frame could be decoded")
        finally:
            cap.release()
        h, w = frame.shape[:2]
        stated = avi_stated_fps(path)
        if stated is not None:  # an AVI: its header's rate, never OpenCV's 25 fps stand-in
            fps = stated
        valid_fps = np.isfinite(fps) and 0 < fps <= MAX_FPS
        self.info = VideoInfo(path, max(n, 1), h, w, fps if valid_fps else None,
                              "container" if valid_fps else "none")

    def chunks(self, chunk_frames: int, *, gray: bool = False) -> Iterator[np.ndarray]:
        n = frames_per_chunk(self.info.height, self.info.width, chunk_frames,
                             self.info.n_frames)
        cap = cv2.VideoCapture(str(self.path))
        decoded = 0
        shape = (n, self.info.height, self.info.width) + (() if gray else (3,))
        conversion = cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB
        try:
            while True:
                batch = np.empty(shape, dtype=np.uint8)
                k = 0
                while k < n:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if frame.shape != (*shape[1:3], 3):
                        raise VideoError(f"{self.path}: frame {decoded + k} is "
                                         f"{frame.shape[1]}x{frame.shape[0]} px, the first "
                                         f"{self.info.width}x{self.info.height}")
                    cv2.cvtColor(frame, conversion, dst=batch[k])
                    k += 1
                if decoded + k < self.info.n_frames and k < n:  # before yielding a short chunk
                    _check_shortfall(self.path, self.info.n_frames, decoded + k)
                if k == 0:
                    break
                decoded += k
                yield batch[:k]
        finally:
            cap.release()


def _tiff_fps_and_pixel_size(tif: tifffile.TiffFile) -> tuple[float | None, float | None, str]:
    """(fps, pixel size in um, source) from shaped, ImageJ or OME metadata; None where absent."""
    fps = pixel = None
    source = "none"
    shaped = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else None
    if shaped:
        if "fps" in shaped:
            fps, source = float(shaped["fps"]), "metadata"
        if "pixel_size_um" in shaped:
            pixel = float(shaped["pixel_size_um"])
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij:
        if "finterval" in ij and float(ij["finterval"]) != 0:
            fps, source = 1.0 / float(ij["finterval"]), "metadata"
        elif "fps" in ij:
            fps, source = float(ij["fps"]), "metadata"
        unit = str(ij.get("unit", "")).lower()
        xres = tif.pages.first.tags.get("XResolution")
        if xres is not None and unit in ("micron", "um", "\\u00b5m", "µm"):
            num, den = xres.value
            if num:
                pixel = den / num
    if tif.is_ome and tif.ome_metadata:
        ome_fps, ome_pixel = _ome_fps_and_pixel_size(tif.ome_metadata)
        if ome_fps is not None:
            fps, source = ome_fps, "metadata"
        pixel = ome_pixel if ome_pixel is not None else pixel
    return fps, pixel, source


_TIME_TO_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}
_LENGTH_TO_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}


def _ome_fps_and_pixel_size(xml: str) -> tuple[float | None, float | None]:
    """Frame rate from Pixels@TimeIncrement (or Plane@DeltaT) and PhysicalSizeX in um."""
    root = ET.fromstring(xml)
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return None, None
    fps = pixel = None
    inc = pixels.get("TimeIncrement")
    scale = _TIME_TO_S.get(pixels.get("TimeIncrementUnit", "s"), 1.0)
    if inc is not None and float(inc) > 0:
        fps = 1.0 / (float(inc) * scale)
    else:
        deltas = [float(d) for p in pixels if p.tag.endswith("Plane") and (d := p.get("DeltaT"))]
        if len(deltas) > 1 and deltas[-1] > deltas[0]:
            unit = next((p.get("DeltaTUnit", "s") for p in pixels if p.tag.endswith("Plane")), "s")
            fps = (len(deltas) - 1) / ((deltas[-1] - deltas[0]) * _TIME_TO_S.get(unit, 1.0))
    size = pixels.get("PhysicalSizeX")
    if size is not None and float(size) > 0:
        pixel = float(size) * _LENGTH_TO_UM.get(pixels.get("PhysicalSizeXUnit", "µm"), 1.0)
    return fps, pixel


class TiffStackReader:
    """Multi-page TIFF / OME-TIFF (any compression imagecodecs reads), one frame per page."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                axes, shape = series.axes, series.shape
                n_pages = len(series.pages)
                one_page_each = len(tif.series) > 1 and all(
                    s.shape == shape and len(s.pages) == 1 for s in tif.series)
                if one_page_each:  # e.g. one shaped series per page: the pages are the frames
                    axes, shape, n_pages = "I" + axes, (len(tif.series), *shape), len(tif.series)
                fps, pixel, source = _tiff_fps_and_pixel_size(tif)
        except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError) as exc:
            raise VideoError(f"{path}: not a readable TIFF ({exc})") from None
        frame_axes = 3 if axes.endswith("S") else 2
        if "C" in axes and shape[axes.index("C")] > 1 and not axes.endswith("S"):
            raise VideoError(f"{path}: multi-channel TIFF (axes {axes}) is not supported; "
                             "save the channel with the heart alone")
        self._frame_shape = tuple(shape[-frame_axes:])
        self._n = int(np.prod(shape[:-frame_axes], dtype=int)) if len(shape) > frame_axes else 1
        self._paged = n_pages == self._n
        self._series = None if one_page_each else 0
        if fps is not None and not (np.isfinite(fps) and 0 < fps <= MAX_FPS):
            # not fatal here: --fps may give the rate; without it the pipeline says "unknown"
            log.warning("%s: metadata gives an invalid frame rate (%s); ignored", path, fps)
            fps, source = None, "none"
        h, w = self._frame_shape[:2]
        self.info = VideoInfo(path, self._n, h, w, fps, source,
                              pixel, "metadata" if pixel is not None else "none")

    def chunks(self, chunk_frames: int, *, gray: bool = False) -> Iterator[np.ndarray]:
        chunk_frames = frames_per_chunk(self.info.height, self.info.width, chunk_frames,
                                        self.info.n_frames)
        with tifffile.TiffFile(self.path) as tif:
            if not self._paged:  # one page holds several frames: read the series whole
                try:
                    data = tif.series[0].asarray().reshape((self._n, *self._frame_shape))
                except Exception as exc:  # e.g. a truncated file
                    raise VideoError(f"{self.path}: cannot decode the frames ({exc})") from None
                for start in range(0, self._n, chunk_frames):
                    yield _as_frames(data[start : start + chunk_frames], self.path, gray)
                return
            for start in range(0, self._n, chunk_frames):
                stop = min(start + chunk_frames, self._n)
                try:
                    data = tif.asarray(key=range(start, stop), series=self._series)
                except Exception as exc:  # codec errors come in many types
                    raise VideoError(f"{self.path}: cannot decode frames {start}-{stop - 1} "
                                     f"({exc})") from None
                yield _as_frames(data.reshape((stop - start, *self._frame_shape)), self.path,
                                 gray)


# A numbered folder with frames missing: each missing frame is put back at its true time as
# the mean of its two neighbours, when the gaps are short (at most MAX_GAP_FRAMES in a row)
# and few (at most MAX_MISSING_FRACTION of the span); otherwise time cannot be rebuilt.
MAX_GAP_FRAMES = 2
MAX_MISSING_FRACTION = 0.05


def frame_numbers(files: list[Path]) -> list[int] | None:
    """The last number in each file name; None unless every name has one, all different."""
    numbers = []
    for f in files:
        found = re.findall(r"\d+", f.stem)
        if not found:
            return None
        numbers.append(int(found[-1]))
    return numbers if len(set(numbers)) == len(numbers) else None


def missing_frame_slots(path: Path, files: list[Path]) -> list[int]:
    """Positions (0-based, in the full numbering) of the frames missing between the first
    and the last file; a VideoError where the gaps are too long or too many to rebuild time."""
    numbers = frame_numbers(files)
    if numbers is None or numbers != sorted(numbers):
        return []
    start, span = numbers[0], numbers[-1] - numbers[0] + 1
    missing = sorted(set(range(start, start + span)) - set(numbers))
    if not missing:
        return []
    longest = max(np.diff(np.array(numbers))) - 1
    if longest > MAX_GAP_FRAMES or len(missing) > MAX_MISSING_FRACTION * span:
        raise VideoError(f"{path}: {len(missing)} of {span} numbered frames are missing (up to "
                         f"{longest} in a row, from number {missing[0]}): the frames' times "
                         "cannot be rebuilt; supply the missing frames or a video")
    return [m - start for m in missing]


class FrameFolderReader:
    """A folder of numbered frame images, in natural sort order.

    Frames missing from the numbering (a short gap, see MAX_GAP_FRAMES) are put back at their
    true place as the mean of their neighbours and listed in `info.missing_frames`.
    """

    def __init__(self, path: Path, files: list[Path] | None = None, *, numbering: bool = True):
        self.path = path
        self.files = files if files is not None else frame_files(path)
        if not self.files:
            raise VideoError(f"{path}: folder holds no frame images ({', '.join(FRAME_SUFFIXES)})")
        first = read_image(self.files[0])
        self._shape = first.shape
        # given files (a screening microscope's) carry their own time base; a plain folder's
        # numbering is its time
        numbered = numbering and files is None
        missing = tuple(missing_frame_slots(path, self.files)) if numbered else ()
        if missing:
            log.warning("%s: %d frame(s) missing from the numbering (first at frame %d); put "
                        "back at their times as the mean of their neighbours", path,
                        len(missing), missing[0])
        self.info = VideoInfo(path, len(self.files) + len(missing), first.shape[0],
                              first.shape[1], None, "none", missing_frames=missing)

    def _images(self) -> Iterator[np.ndarray]:
        """Every frame in time order, the missing ones rebuilt from their neighbours."""
        missing = set(self.info.missing_frames)
        files = iter(self.files)
        previous: np.ndarray | None = None
        held = 0
        for slot in range(self.info.n_frames):
            if slot in missing:
                held += 1
                continue
            file = next(files)
            image = read_image(file)
            if image.shape != self._shape:
                raise VideoError(f"{file}: frame shape {image.shape} differs from the "
                                 f"first frame's {self._shape}")
            if held:  # the gap before this frame
                if previous is None:  # cannot happen: the gaps lie between the first and last file
                    raise VideoError(f"{file}: frames missing before the first frame")
                for _ in range(held):
                    yield ((previous.astype(np.float32) + image) / 2).astype(image.dtype)
            previous, held = image, 0
            yield image

    def chunks(self, chunk_frames: int, *, gray: bool = False) -> Iterator[np.ndarray]:
        chunk_frames = frames_per_chunk(self.info.height, self.info.width, chunk_frames,
                                        self.info.n_frames)
        batch = []
        for image in self._images():
            batch.append(image)
            if len(batch) == chunk_frames:
                yield _as_frames(np.stack(batch), self.path, gray)
                batch = []
        if batch:
            yield _as_frames(np.stack(batch), self.path, gray)


def frame_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, naturally sorted."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=natural_key)


def open_video(path: str | Path, *, numbering: bool = True
               ) -> ContainerReader | TiffStackReader | FrameFolderReader:
    """Reader for a video file or frame folder, chosen by suffix; raises VideoError.

    numbering : a frame folder's file numbers are its frames' times (missing numbers are
        rebuilt or refused, see `FrameFolderReader`); False: frames in file order whatever
        their numbers (annotation folders that hold several runs of frames).
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    if path.is_dir():
        return FrameFolderReader(path, numbering=numbering)
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return TiffStackReader(path)
    if suffix in CONTAINER_SUFFIXES:
        return ContainerReader(path)
    raise VideoError(f"{path}: unknown video type '{suffix}' (known: {', '.join(VIDEO_SUFFIXES)})")


def read_all(path: str | Path, chunk_frames: int = 64) -> np.ndarray:
    """Every frame of a short video as one array (for tests and small inputs only)."""
    return np.concatenate(list(open_video(path).chunks(chunk_frames)))

