"""Image/mask pairs for training the segmenter, generated on the fly.

Three ways in, all deterministic for a seed::

    from medaka_heart.phantom import iter_training_pairs, TrainingPairs, training_pair

    # 1. an endless stream (fastest: several frames are taken from each phantom scene)
    for image, mask in iter_training_pairs(seed=0, preset="typical"):
        ...  # image (H, W, 3) uint8 RGB ("hts": (H, W) uint16), mask (H, W) bool

    # 2. a map-style dataset, usable as a torch Dataset (no torch import here)
    data = TrainingPairs(length=10_000, seed=0, preset="typical", frames_per_scene=8)
    image, mask = data[123]

    # 3. one pair from a generator (a whole scene per pair: slower)
    image, mask = training_pair(np.random.default_rng(0), "hard")

With a torch DataLoader, `TrainingPairs` caches the last scene per worker, so keep
``shuffle=False`` (the pairs are random already) or use a sampler that visits indices in runs
of `frames_per_scene`; each worker then builds one scene per `frames_per_scene` items. Frames
of one scene are taken at random times, so they cover the whole cardiac cycle. Mixing presets
(e.g. ``preset=("typical", "hard")``) draws one of them per scene.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .generate import Phantom, make_phantom
from .presets import PhantomPreset, load_preset

PresetArg = str | Path | PhantomPreset | Sequence[str | Path | PhantomPreset]


def _presets(preset: PresetArg) -> list[PhantomPreset]:
    if isinstance(preset, (str, Path, PhantomPreset)):
        preset = [preset]
    return [p if isinstance(p, PhantomPreset) else load_preset(p) for p in preset]


def _scene(presets: list[PhantomPreset], rng: np.random.Generator, duration_s: float) -> Phantom:
    preset = presets[rng.integers(len(presets))]
    return make_phantom(preset, rng=rng, duration_s=duration_s)


def training_pair(
    rng: np.random.Generator, preset: PresetArg = "typical", *, duration_s: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """One (image, mask) pair from a fresh phantom scene, at a random frame."""
    phantom = _scene(_presets(preset), rng, duration_s)
    i = int(rng.integers(phantom.n_frames))
    return phantom.image(i), phantom.mask(i)


def iter_training_pairs(
    seed: int = 0,
    preset: PresetArg = "typical",
    *,
    frames_per_scene: int = 8,
    duration_s: float = 2.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (image, mask) pairs: `frames_per_scene` random frames from each new scene."""
    rng = np.random.default_rng(seed)
    presets = _presets(preset)
    while True:
        phantom = _scene(presets, rng, duration_s)
        for i in rng.integers(phantom.n_frames, size=frames_per_scene):
            yield phantom.image(int(i)), phantom.mask(int(i))


def iter_training_scenes(
    seed: int = 0, preset: PresetArg = "typical", *, duration_s: float = 2.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless whole scenes: (frames (T, H, W[, 3]), masks (T, H, W) bool), every frame of a
    `duration_s` phantom video (what beat planes are computed from)."""
    rng = np.random.default_rng(seed)
    presets = _presets(preset)
    while True:
        phantom = _scene(presets, rng, duration_s)
        frames = np.stack([phantom.image(i) for i in range(phantom.n_frames)])
        yield frames, np.stack([phantom.mask(i) for i in range(phantom.n_frames)])


class TrainingPairs:
    """Map-style dataset of `length` (image, mask) pairs; item ``k`` is the same every time.

    Item k is frame ``j`` of scene ``k // frames_per_scene``, both drawn from
    ``(seed, scene index)``; the last scene is cached.
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        preset: PresetArg = "typical",
        *,
        frames_per_scene: int = 8,
        duration_s: float = 2.0,
    ):
        self.length = int(length)
        self.seed = int(seed)
        self.presets = _presets(preset)
        self.frames_per_scene = int(frames_per_scene)
        self.duration_s = float(duration_s)
        self._cache: tuple[int, Phantom, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> tuple[Phantom, np.ndarray]:
        """Scene `index` and the frame indices its items use."""
        if self._cache is None or self._cache[0] != index:
            rng = np.random.default_rng([self.seed, index])
            phantom = _scene(self.presets, rng, self.duration_s)
            frames = rng.integers(phantom.n_frames, size=self.frames_per_scene)
            self._cache = (index, phantom, frames)
        return self._cache[1], self._cache[2]

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not -self.length <= k < self.length:
            raise IndexError(k)
        k %= self.length
        phantom, frames = self.scene(k // self.frames_per_scene)
        i = int(frames[k % self.frames_per_scene])
        return phantom.image(i), phantom.mask(i)
