"""Training data: (image, mask) pairs at network size, grouped by video/sequence.

Sources
-------
heartseg : the public HeartSeg layout (Schutera et al. 2019)::

    root/train_images/<name>_sample_gray/ (or <name>_samples/)  frames, any number in the name
    root/train_images/<name>_mask/NNNN_mask.tif                  RGB 0/255; nonzero = ventricle
    root/test_images/...                                         same layout

  Images and masks are paired by the frame number (last digits of the file name).
synth : a folder written by the phantom generator: ``<name>.avi`` + ``<name>.truth/masks.tif``.
pairs : any folder tree of image/mask pairs, either ``images/`` + ``masks/`` sibling folders
  with matching file stems (a ``_mask`` suffix on mask stems is allowed), or ``X.ext`` next to
  ``X_mask.ext``. The sequence of a file is its stem without trailing frame digits.
generated : a pool of pairs drawn from an endless (image, mask) generator (the phantom
  generator's `iter_training_pairs`, or `toy_pairs` for tests), from a seed.

Every frame is held in memory as two small views (see `samples.make_views`); finite sources
are split into training and validation by sequence, never by frame.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..io.image import read_image
from .samples import ViewSpec, make_views, scene_motion, scene_views

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class PairFiles:
    """Image and mask files of one sequence, in frame order."""

    name: str
    images: tuple[Path, ...]
    masks: tuple[Path, ...]


@dataclass(frozen=True)
class SequenceData:
    """The stored views (see `samples.make_views`) of the N frames of one sequence.

    coarse : (N, Sc, Sc) uint8 whole frames; coarse_masks : (N, Sc, Sc) bool.
    context : (N, Sx, Sx) uint8 regions around the heart; context_masks : (N, Sx, Sx) bool.
    stats : (G, 2, Sx, Sx) float16 beat statistics of G whole scenes (`samples.scene_views`)
        and scene : (N,) int each frame's scene; None for frames without their video.
    """

    name: str
    coarse: np.ndarray
    coarse_masks: np.ndarray
    context: np.ndarray
    context_masks: np.ndarray
    stats: np.ndarray | None = None
    scene: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.context)

    def stats_of(self, index: int) -> np.ndarray | None:
        """The beat statistics (2, Sx, Sx) of frame `index`'s scene; None without."""
        if self.stats is None or self.scene is None:
            return None
        return self.stats[self.scene[index]]


def views_of(name: str, pairs: Iterable[tuple[np.ndarray, np.ndarray]], spec: ViewSpec,
             box_side: float | None = None) -> SequenceData:
    """SequenceData from (frame (H, W[, C]), mask (H, W[, C]); nonzero = heart) pairs.

    box_side : the heart box side (native px) every frame's context is built on (see
        `samples.make_views`); None = each frame's own. Pairs are converted one at a time, so
        an iterator keeps memory at the size of the views.
    """
    # numpy stubs type any(axis=-1) as maybe a scalar; of a 3-D mask it is an array
    parts = [make_views(f, m.any(axis=-1) if m.ndim == 3 else m,  # type: ignore[arg-type]
                        spec, box_side)
             for f, m in pairs]
    if not parts:
        raise ValueError(f"{name}: no frames")
    return SequenceData(name, *(np.stack(a) for a in zip(*parts, strict=True)))


def recording_views(name: str, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                    spec: ViewSpec) -> SequenceData:
    """SequenceData of the annotated frames of one recording (same-size frames (H, W[, C]),
    masks (H, W) nonzero = heart), as one scene: every context is cut around the box of all
    its masks, and the frames' temporal std and median are its beat statistics
    (`samples.scene_views`), as a beat-plane model sees a chunk of that recording."""
    frames = np.stack(images)
    heart = np.stack([m.any(axis=-1) if m.ndim == 3 else m.astype(bool) for m in masks])
    views, stats = scene_views(frames, heart, np.arange(len(frames)), spec)
    coarse, coarse_masks, context, context_masks = (np.stack(a) for a in zip(*views,
                                                                              strict=True))
    return SequenceData(name, coarse, coarse_masks, context, context_masks,
                        stats=stats[None], scene=np.zeros(len(frames), dtype=int))


# ---------------------------------------------------------------------------- file discovery

def frame_number(path: Path) -> int | None:
    """The last number in a file name (its frame), None if it has none."""
    found = re.findall(r"\d+", path.stem)
    return int(found[-1]) if found else None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _pair_by_number(name: str, image_dir: Path, mask_dir: Path) -> PairFiles:
    images = {frame_number(p): p for p in _image_files(image_dir)}
    masks = {frame_number(p): p for p in _image_files(mask_dir)}
    common = sorted(k for k in images.keys() & masks.keys() if k is not None)
    if not common:
        raise ValueError(f"{mask_dir}: no mask shares a frame number with the images in "
                         f"{image_dir}")
    return PairFiles(name, tuple(images[k] for k in common), tuple(masks[k] for k in common))


_IMAGE_DIR = re.compile(r"^(?P<name>.+?)_(sample_gray|samples)$")
_MASK_DIR = re.compile(r"^(?P<name>.+?)_mask$")


def find_heartseg(root: str | Path, subsets: Sequence[str] = ("train_images", "test_images")
                  ) -> list[PairFiles]:
    """Sequences of a HeartSeg tree; `subsets` picks among train_images/ and test_images/.

    Raises FileNotFoundError when none of the subsets exists, ValueError when no pair is found.
    """
    root = Path(root)
    dirs = [root / s for s in subsets if (root / s).is_dir()]
    if not dirs:
        raise FileNotFoundError(f"{root}: no {' or '.join(subsets)} folder (HeartSeg layout)")
    found = []
    for subset in dirs:
        children = sorted(p for p in subset.iterdir() if p.is_dir())
        masks = {m["name"]: p for p in children if (m := _MASK_DIR.match(p.name))}
        for image_dir in children:
            m = _IMAGE_DIR.match(image_dir.name)
            if m and m["name"] in masks:
                name = f"{subset.name}/{m['name']}"
                found.append(_pair_by_number(name, image_dir, masks[m["name"]]))
    if not found:
        raise ValueError(f"{root}: no <name>_sample_gray|_samples / <name>_mask folder pairs")
    return found


def _sequence_name(stem: str) -> str:
    base = re.sub(r"[_\-. ]*\d+$", "", stem)
    return base or stem


def find_pairs(root: str | Path) -> list[PairFiles]:
    """Image/mask pairs anywhere under `root` (``images/``+``masks/`` or ``X`` + ``X_mask``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    groups: dict[str, tuple[list[Path], list[Path]]] = {}

    def add(seq: str, image: Path, mask: Path) -> None:
        imgs, msks = groups.setdefault(seq, ([], []))
        imgs.append(image)
        msks.append(mask)

    for mask_dir in sorted(p for p in root.rglob("masks") if p.is_dir()):
        image_dir = mask_dir.parent / "images"
        if not image_dir.is_dir():
            continue
        masks = {re.sub(r"_mask$", "", p.stem): p for p in _image_files(mask_dir)}
        for image in _image_files(image_dir):
            if image.stem in masks:
                prefix = image_dir.parent.relative_to(root).as_posix()
                add(f"{prefix}/{_sequence_name(image.stem)}", image, masks[image.stem])
    for mask in sorted(root.rglob("*_mask.*")):
        if mask.parent.name == "masks" or mask.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = mask.stem[: -len("_mask")]
        for suffix in IMAGE_SUFFIXES:
            image = mask.with_name(stem + suffix)
            if image.is_file():
                prefix = mask.parent.relative_to(root).as_posix()
                add(f"{prefix}/{_sequence_name(stem)}", image, mask)
                break
    if not groups:
        raise ValueError(f"{root}: no image/mask pairs found")
    return [PairFiles(k, tuple(v[0]), tuple(v[1])) for k, v in sorted(groups.items())]


def find_synth(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, video, masks.tif) of every ``<name>.avi`` with a ``<name>.truth/masks.tif``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found = []
    for video in sorted(folder.glob("*.avi")):
        masks = video.with_suffix(".truth") / "masks.tif"
        if masks.is_file():
            found.append((video.stem, video, masks))
    if not found:
        raise ValueError(f"{folder}: no <name>.avi with <name>.truth/masks.tif")
    return found


# ---------------------------------------------------------------------------- loading

def load_pair_files(pairs: PairFiles, spec: ViewSpec) -> SequenceData:
    """Read one sequence of image/mask files into its stored views."""
    def images():
        for image_path, mask_path in zip(pairs.images, pairs.masks, strict=True):
            image, mask = read_image(image_path), read_image(mask_path)
            if mask.shape[:2] != image.shape[:2]:
                raise ValueError(f"{mask_path}: mask is {mask.shape[:2]} but image is "
                                 f"{image.shape[:2]}")
            yield image, mask

    return views_of(pairs.name, images(), spec)


def load_synth_video(name: str, video: Path, masks: Path, spec: ViewSpec, *, every: int = 1
                     ) -> SequenceData:
    """Read a phantom video and its truth masks (every `every`-th frame) into stored views."""
    from ..io.masks import mask_chunks
    from ..io.video import open_video

    frames: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    for chunk, mchunk in zip(open_video(video).chunks(64), mask_chunks(masks, 64), strict=True):
        frames.extend(chunk)
        truth.extend(mchunk)
    return views_of(name, zip(frames[::every], truth[::every], strict=True), spec)


def split_by_sequence(sequences: Sequence[SequenceData], val_fraction: float, seed: int
                      ) -> tuple[list[SequenceData], list[SequenceData]]:
    """Random (train, val) split of whole sequences; val gets round(fraction * n), >= 1 if n > 1."""
    n = len(sequences)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(sequences) if i not in val_idx]
    val = [s for i, s in enumerate(sequences) if i in val_idx]
    return train, val


# ---------------------------------------------------------------------------- sampling

class FramePool:
    """Frames of in-memory sequences, sampled uniformly over frames.

    `motion` holds one motion plane (see `samples.scene_motion`) per scene: runs of
    `group_size` consecutive frames of a sequence (generated pools), or whole sequences (None).
    The beat statistics of whole scenes are kept where every sequence has them.
    """

    def __init__(self, sequences: Sequence[SequenceData], group_size: int | None = None):
        if not sequences or sum(len(s) for s in sequences) == 0:
            raise ValueError("empty frame pool")
        self.names = [s.name for s in sequences]
        coarse, coarse_masks, context, context_masks = (
            np.concatenate([getattr(s, f) for s in sequences])
            for f in ("coarse", "coarse_masks", "context", "context_masks"))
        self.data = SequenceData("pool", coarse, coarse_masks, context, context_masks,
                                 *pooled_stats(sequences))
        self.motion, self.scene = sequence_motion(sequences, group_size)

    def __len__(self) -> int:
        return len(self.data)

    def pick(self, rng: np.random.Generator) -> int:
        """A random frame index."""
        return int(rng.integers(len(self.data)))

    def motion_of(self, index: int) -> np.ndarray:
        """The motion plane (Sc, Sc) uint8 of frame `index`'s scene."""
        return self.motion[self.scene[index]]


def pooled_stats(sequences: Sequence[SequenceData]
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The scenes' beat statistics of `sequences` together, with each frame's scene renumbered
    (None, None unless every sequence has them)."""
    stats, scenes, offset = [], [], 0
    for seq in sequences:
        if seq.stats is None or seq.scene is None:
            return None, None
        stats.append(seq.stats)
        scenes.append(seq.scene + offset)
        offset += len(seq.stats)
    return np.concatenate(stats), np.concatenate(scenes)


def sequence_motion(sequences: Sequence[SequenceData], group_size: int | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Motion planes (G, Sc, Sc) uint8 of the scenes of `sequences` and each frame's scene."""
    planes, scenes, offset = [], [], 0
    for seq in sequences:
        motion, scene = scene_motion(seq.coarse, group_size)
        planes.append(motion)
        scenes.append(scene + offset)
        offset += len(motion)
    return np.concatenate(planes), np.concatenate(scenes)


def generate_sequence(pairs: Iterator[tuple[np.ndarray, np.ndarray]], n: int, spec: ViewSpec,
                      name: str, progress: bool = False) -> SequenceData:
    """The first `n` (image, mask) pairs of a generator, as stored views."""
    from tqdm.auto import tqdm

    stream = tqdm(itertools.islice(pairs, n), total=n, desc=f"generating {name}",
                  disable=not progress, leave=False)
    return views_of(name, stream, spec)


def generate_scene_sequence(scenes: Iterator[tuple[np.ndarray, np.ndarray]], n: int,
                            per_scene: int, spec: ViewSpec, name: str, seed: int,
                            progress: bool = False) -> SequenceData:
    """`n` frames, `per_scene` at random from each whole scene of a generator (frames, masks),
    as stored views with their scenes' beat statistics (`samples.scene_views`)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    count = -(-n // per_scene)
    parts, stats, scene = [], [], []
    for g, (frames, masks) in enumerate(tqdm(itertools.islice(scenes, count), total=count,
                                             desc=f"generating {name}", disable=not progress,
                                             leave=False)):
        picked = rng.choice(len(frames), size=min(per_scene, len(frames)), replace=False)
        views, scene_stats = scene_views(frames, masks, picked, spec)
        parts.extend(views)
        stats.append(scene_stats)
        scene.extend([g] * len(views))
    if not parts:
        raise ValueError(f"{name}: no scenes")
    coarse, coarse_masks, context, context_masks = (np.stack(a) for a in zip(*parts,
                                                                              strict=True))
    return SequenceData(name, coarse, coarse_masks, context, context_masks,
                        stats=np.stack(stats), scene=np.asarray(scene))


def cached(cache_dir: str | Path | None, key: dict, make: Callable[[], SequenceData]
           ) -> SequenceData:
    """`make()`, stored in / reused from ``cache_dir/<sha256 of key>.npz`` (no cache if None).

    `key` must describe everything the result depends on (plain JSON values). The cache does
    not notice changes of the generator's code: delete it after such a change.
    """
    if cache_dir is None:
        return make()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"views_{digest}.npz"
    fields = ("coarse", "coarse_masks", "context", "context_masks")
    optional = ("stats", "scene")
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            extra = {f: data[f] for f in optional if f in data.files}
            return SequenceData(str(data["name"]), *(data[f] for f in fields), **extra)
    seq = make()
    arrays = {f: getattr(seq, f) for f in (*fields, *optional) if getattr(seq, f) is not None}
    with atomic_path(path) as tmp:
        np.savez(tmp, name=np.array(seq.name), **arrays)
    return seq


def toy_pairs(seed: int, height: int = 96, width: int = 128
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless `toy_pair`s from one seed."""
    rng = np.random.default_rng(seed)
    while True:
        yield toy_pair(rng, height, width)


def toy_scenes(seed: int, frames: int = 12, height: int = 96, width: int = 128
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless toy scenes: (frames (T, H, W) uint8, masks (T, H, W) bool) of an ellipse that
    grows and shrinks over one beat on a still background. For tests only."""
    rng = np.random.default_rng(seed)
    while True:
        image, mask = toy_pair(rng, height, width)
        background = np.where(mask, np.median(image[~mask]), image).astype(np.float32)
        inside = float(image[mask].mean()) if mask.any() else 0.0
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean(), xs.mean()
        stack, masks = [], []
        for t in range(frames):
            scale = 0.7 + 0.3 * np.cos(2 * np.pi * t / frames)
            yy, xx = np.mgrid[0:height, 0:width]
            inner = mask[np.clip(((yy - cy) / scale + cy).round().astype(int), 0, height - 1),
                         np.clip(((xx - cx) / scale + cx).round().astype(int), 0, width - 1)]
            frame = np.where(inner, inside, background) + rng.normal(0, 3, (height, width))
            stack.append(np.clip(frame, 0, 255).astype(np.uint8))
            masks.append(inner)
        yield np.stack(stack), np.stack(masks)


def toy_pair(rng: np.random.Generator, height: int = 96, width: int = 128
             ) -> tuple[np.ndarray, np.ndarray]:
    """A random ellipse on a textured background: (image (H, W) uint8, mask (H, W) bool).

    For tests and smoke runs only; the ellipse is brighter or darker than its surround.
    """
    from skimage.draw import ellipse

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = 90 + 30 * np.sin(xx / rng.uniform(5, 15) + rng.uniform(0, 6)) * np.cos(
        yy / rng.uniform(5, 15))
    image = background + rng.normal(0, 8, size=(height, width))
    r = rng.uniform(0.12, 0.3) * min(height, width)
    c = rng.uniform(0.7, 1.3) * r
    cy = rng.uniform(r, height - r)
    cx = rng.uniform(c, width - c)
    rows, cols = ellipse(cy, cx, r, c, shape=(height, width), rotation=rng.uniform(-np.pi, np.pi))
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = True
    image[mask] += rng.choice([-1.0, 1.0]) * rng.uniform(40, 70)
    return np.clip(image, 0, 255).astype(np.uint8), mask
