"""Annotated frames for `medaka-heart adapt`, found in the layouts biologists already have.

`read_annotations(path)` walks `path` (a folder, or one annotation file) and returns one
`Annotated` per recording. Layouts, anywhere under `path` (masks of any nonzero value are
ventricle):

- **image/mask pairs**: ``X.png`` next to ``X_mask.png`` (any image suffix), or ``images/`` +
  ``masks/`` sibling folders with matching stems; frames of one recording share a stem
  without their trailing frame number (see `model.data.find_pairs`);
- **HeartSeg**: ``train_images/`` / ``test_images/`` with ``<name>_sample_gray/`` (or
  ``_samples/``) + ``<name>_mask/`` folders, paired by frame number;
- **napari Labels** saved as TIFF: ``NAME_labels.tif`` (one page per frame, or one page)
  beside its video or image ``NAME.<ext>`` (or frame folder ``NAME/``); the frames with any
  label are the annotated ones;
- **Fiji/ImageJ ROI sets**: ``NAME.zip`` / ``NAME.roi`` (also ``NAME_roi``, ``NAME_rois``,
  ``NAME_RoiSet``) beside ``NAME.<ext>``; each ROI's frame is its t (else stack, else z)
  position; the ROIs of one frame are joined; a pixel is inside when its centre is, as
  ImageJ fills masks;
- **analysis results with corrected masks**: an ``analyze --save-masks`` folder with
  ``corrected/`` or ``corrected_frames.txt`` (see `io.corrections`), frames read from the
  video its provenance names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corrections import CORRECTED_DIR, is_result_folder, read_corrections, result_video
from .image import read_image
from .masks import read_label_stack
from .video import CONTAINER_SUFFIXES, FRAME_SUFFIXES, TIFF_SUFFIXES, open_video

LABELS_SUFFIX = "_labels"
ROI_SUFFIXES = ("", "_roi", "_rois", "_RoiSet")  # NAME<suffix>.zip / .roi beside NAME.<ext>
MEDIA_SUFFIXES = tuple(dict.fromkeys(FRAME_SUFFIXES + TIFF_SUFFIXES + CONTAINER_SUFFIXES))
LAYOUTS = ("X + X_mask image pairs", "images/ + masks/", "HeartSeg train_images/",
           "NAME_labels.tif beside NAME's video", "NAME.zip/.roi ImageJ ROIs beside NAME's video",
           "analyze --save-masks result folders with corrected/ or corrected_frames.txt")


@dataclass(frozen=True)
class Annotated:
    """The annotated frames of one recording.

    images : (H, W) or (H, W, C) frames of any dtype; masks : (H, W) bool, ventricle True;
    frames : each frame's index in its recording (for held-out blocks of neighbours);
    layout : which layout it was read from.
    """

    name: str
    images: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    frames: tuple[int, ...]
    layout: str

    def __len__(self) -> int:
        return len(self.masks)


def read_annotations(path: str | Path) -> list[Annotated]:
    """Every annotated recording under `path`, sorted by name.

    Raises FileNotFoundError when `path` does not exist, ValueError (naming the file) when an
    annotation is unreadable or does not match its image, or when nothing is found.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        found = _from_file(path, path.parent)
        if found is None:
            raise ValueError(f"{path}: not an annotation file (a NAME_labels.tif or an ImageJ "
                             ".zip/.roi beside NAME's video)")
        return [found]
    recordings = [*_result_folders(path), *_labelled(path), *_heartseg(path), *_pairs(path)]
    recordings = [r for r in recordings if len(r)]
    if not recordings:
        raise ValueError(f"{path}: no annotated frames found (layouts: {'; '.join(LAYOUTS)})")
    names = [r.name for r in recordings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: recording(s) {', '.join(duplicates)} annotated twice")
    return sorted(recordings, key=lambda r: r.name)


# ---------------------------------------------------------------------------- layouts

def _relative(path: Path, root: Path) -> str:
    name = path.relative_to(root).as_posix() if path != root else path.name
    return name or path.name


def _result_folders(root: Path) -> Iterable[Annotated]:
    candidates = [root, *(p.parent for p in root.rglob("provenance.json"))]
    for folder in dict.fromkeys(candidates):
        if is_result_folder(folder):
            masks = read_corrections(folder)
            if masks:
                frames = sorted(masks)
                images = frames_of(result_video(folder), frames)
                yield _checked(_relative(folder, root.parent if folder == root else root),
                               images, [masks[f] for f in frames], frames, "result", folder)


def _labelled(root: Path) -> Iterable[Annotated]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and CORRECTED_DIR not in path.parts:
            found = _from_file(path, root)
            if found is not None:
                yield found


def _from_file(path: Path, root: Path) -> Annotated | None:
    """The recording annotated by one labels TIFF or ROI file; None if it is neither."""
    suffix, stem = path.suffix.lower(), path.stem
    if suffix in TIFF_SUFFIXES and stem.endswith(LABELS_SUFFIX):
        media = _media_beside(path, stem[: -len(LABELS_SUFFIX)])
        if media is None:
            raise ValueError(f"{path}: no video or image {stem[: -len(LABELS_SUFFIX)]}.* "
                             "beside it")
        frames, masks = _labels_tiff(path)
        name = _relative(media.with_suffix(""), root)
        return _checked(name, frames_of(media, frames), masks, frames, "napari labels", path)
    if suffix in (".zip", ".roi"):
        stems = [stem[: len(stem) - len(t)] for t in ROI_SUFFIXES if stem.endswith(t)]
        media = next((m for m in (_media_beside(path, s) for s in stems if s) if m), None)
        if media is None:
            return None  # a zip that annotates nothing here (an archive, a download)
        shape = _frame_shape(media)
        by_frame = _roi_masks(path, shape)
        frames = sorted(by_frame)
        name = _relative(media.with_suffix(""), root)
        return _checked(name, frames_of(media, frames), [by_frame[f] for f in frames], frames,
                        "imagej rois", path)
    return None


def _heartseg(root: Path) -> Iterable[Annotated]:
    from ..model.data import find_heartseg

    if not any((root / s).is_dir() for s in ("train_images", "test_images")):
        return
    for pairs in find_heartseg(root):
        yield _read_pairs(pairs.name, pairs.images, pairs.masks, "heartseg")


def _pairs(root: Path) -> Iterable[Annotated]:
    from ..model.data import find_pairs

    try:
        found = find_pairs(root)
    except ValueError:  # no pairs here: other layouts may still have found some
        return
    for pairs in found:
        yield _read_pairs(pairs.name.lstrip("./") or pairs.name, pairs.images, pairs.masks,
                          "pairs")


def _read_pairs(name: str, images: Sequence[Path], masks: Sequence[Path], layout: str
                ) -> Annotated:
    from ..model.data import frame_number

    numbers = [frame_number(p) for p in images]
    order = [int(n) for n in numbers if n is not None]
    if len(order) < len(images):  # names without numbers: frames in file order
        order = list(range(len(images)))
    pixels = [read_image(p) for p in images]
    truth = [_binary(read_image(p)) for p in masks]
    for path, image, mask in zip(masks, pixels, truth, strict=True):
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{path}: mask is {mask.shape} but its image is {image.shape[:2]}")
    return Annotated(name, tuple(pixels), tuple(truth), tuple(int(f) for f in order), layout)


# ---------------------------------------------------------------------------- readers

def _binary(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: any nonzero channel is ventricle."""
    mask = np.asarray(mask)
    return (mask.max(axis=2) if mask.ndim == 3 else mask) != 0


def _media_beside(path: Path, stem: str) -> Path | None:
    """The video, image or frame folder called `stem` beside `path`."""
    folder = path.parent / stem
    if folder.is_dir():
        return folder
    for suffix in MEDIA_SUFFIXES:
        for candidate in (path.with_name(stem + suffix), path.with_name(stem + suffix.upper())):
            if candidate.is_file() and candidate != path:
                return candidate
    return None


def frames_of(media: Path, frames: Sequence[int]) -> list[np.ndarray]:
    """Frames `frames` (indices from 0) of a video, frame folder or single image."""
    if media.is_file() and media.suffix.lower() in FRAME_SUFFIXES and \
            media.suffix.lower() not in TIFF_SUFFIXES:
        return [read_image(media)] if list(frames) == [0] else _past_end(media, frames, 1)
    wanted = set(frames)
    found: dict[int, np.ndarray] = {}
    start = 0
    for chunk in open_video(media).chunks(64):
        for i in wanted & set(range(start, start + len(chunk))):
            found[i] = np.asarray(chunk[i - start])
        start += len(chunk)
        if len(found) == len(wanted):
            break
    if len(found) < len(wanted):
        return _past_end(media, frames, start)
    return [found[i] for i in frames]


def _past_end(media: Path, frames: Sequence[int], count: int) -> list[np.ndarray]:
    late = [f for f in frames if f >= count]
    raise ValueError(f"{media}: annotated frame {late[0]} is past its {count} frame(s)")


def _frame_shape(media: Path) -> tuple[int, int]:
    return frames_of(media, [0])[0].shape[:2]


def _labels_tiff(path: Path) -> tuple[list[int], list[np.ndarray]]:
    """(frames with any label, their bool masks) of a napari Labels TIFF."""
    labels = read_label_stack(path, "labels")
    frames = [int(i) for i in np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))]
    return frames, [labels[i] != 0 for i in frames]


def _roi_masks(path: Path, shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """{frame: (H, W) bool} of an ImageJ .roi or ROI-set .zip, filled as ImageJ does."""
    import roifile
    from skimage.draw import polygon

    try:
        rois = roifile.roiread(path)
    except Exception as exc:  # roifile raises many kinds on a broken file
        raise ValueError(f"{path}: not a readable ImageJ ROI file ({exc})") from None
    rois = rois if isinstance(rois, list) else [rois]
    out: dict[int, np.ndarray] = {}
    for roi in rois:
        position = roi.t_position or roi.position or roi.z_position or 1
        outline = np.asarray(roi.coordinates(), dtype=float)
        if outline.ndim != 2 or len(outline) < 3:
            raise ValueError(f"{path}: ROI {roi.name!r} is not an area (fewer than 3 points)")
        # ImageJ coordinates are pixel corners; a pixel is inside when its centre is
        rows, cols = polygon(outline[:, 1] - 0.5, outline[:, 0] - 0.5, shape)
        mask = out.setdefault(int(position) - 1, np.zeros(shape, bool))
        mask[rows, cols] = True
    return out


def _checked(name: str, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
             frames: Sequence[int], layout: str, where: Path) -> Annotated:
    for frame, image, mask in zip(frames, images, masks, strict=True):
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{where}: frame {frame}'s mask is {mask.shape} but the frame is "
                             f"{image.shape[:2]}")
    return Annotated(name, tuple(images), tuple(np.asarray(m, bool) for m in masks),
                     tuple(int(f) for f in frames), layout)
