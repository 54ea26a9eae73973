"""Shared fixtures: masks of ellipses whose axes follow a known periodic law."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from skimage.draw import ellipse


@dataclass(frozen=True)
class EllipseLaw:
    """Semi-axes a (major) and b (minor) in px contract by fractions fa, fb at systole.

    c(t) = (1 - cos(2 pi f t + phase)) / 2 is 0 at end-diastole and 1 at end-systole.
    """

    fps: float = 15.0
    hr_bpm: float = 130.0
    a0: float = 70.0
    b0: float = 45.0
    fa: float = 0.10
    fb: float = 0.25
    phase: float = 1.0
    height: int = 240
    width: int = 320
    pixel_size_um: float = 1.5

    def contraction(self, t):
        return 0.5 * (1 - np.cos(2 * np.pi * self.hr_bpm / 60 * np.asarray(t) + self.phase))

    def semi_axes(self, t):
        c = self.contraction(t)
        return self.a0 * (1 - self.fa * c), self.b0 * (1 - self.fb * c)

    def ed_times(self, duration):
        f = self.hr_bpm / 60
        k = np.arange(-2, duration * f + 2)
        t = (2 * np.pi * k - self.phase) / (2 * np.pi * f)
        return t[(t >= 0) & (t <= duration)]

    def es_times(self, duration):
        f = self.hr_bpm / 60
        k = np.arange(-2, duration * f + 2)
        t = (2 * np.pi * k + np.pi - self.phase) / (2 * np.pi * f)
        return t[(t >= 0) & (t <= duration)]

    def volume_pl(self, a, b):
        return np.pi / 6 * (2 * b * self.pixel_size_um) ** 2 * (2 * a * self.pixel_size_um) / 1000

    def masks(self, n_frames, angle=0.3):
        stack = np.zeros((n_frames, self.height, self.width), dtype=bool)
        cy, cx = self.height / 2, self.width / 2
        for i in range(n_frames):
            a, b = self.semi_axes(i / self.fps)
            rr, cc = ellipse(cy, cx, b, a, shape=stack.shape[1:], rotation=angle)
            stack[i, rr, cc] = True
        return stack


@pytest.fixture
def law() -> EllipseLaw:
    return EllipseLaw()


SCRIPTS = Path(__file__).parents[1] / "scripts"


@pytest.fixture
def load_script():
    """Import a script of scripts/ by name (they are not a package): load_script("x") -> module."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def beating(law):
    """(masks (T, H, W) bool, gray uint8 frames): the ellipse law as a bright region on noise."""
    masks = law.masks(int(6 * law.fps))
    rng = np.random.default_rng(7)
    frames = (rng.integers(20, 60, masks.shape) + 150 * masks).astype(np.uint8)
    return masks, frames


@pytest.fixture(autouse=True, scope="session")
def use_leak_safe_log_records():
    """Overrides the napari pytest plugin's fixture of this name (it loads whenever the
    napari extra is installed), which swaps logging's record factory for the whole session
    for one that turns arguments other than int/float into strings, so a numpy integer
    logged with %d raised in every test that logs one. Logging stays as it is."""
