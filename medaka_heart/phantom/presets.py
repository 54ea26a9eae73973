"""Phantom presets: parameter ranges read from TOML, and the draw of one video's parameters.

A preset TOML has a top-level ``setting`` ("stereo" or "hts") and three tables, ``[video]``,
``[heart]`` and ``[render]``. Each value is a number (fixed), a two-number list ``[lo, hi]``
(drawn uniformly per video) or, for ``view``, a list of choices. A preset may start from
another with ``base = "typical"`` and override only some keys; the shipped presets live in
``medaka_heart/phantom/presets/*.toml`` (``typical.toml`` is complete and documents every key).
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

SETTINGS = ("stereo", "hts")
Range = tuple[float, float]


@dataclass(frozen=True)
class PhantomPreset:
    """Ranges of every generating parameter (see ``presets/typical.toml`` for the meaning)."""

    name: str
    setting: str  # "stereo" (colour stereomicroscope) or "hts" (96-well brightfield, 16-bit)
    # [video]
    fps: Range
    duration_s: Range
    width: Range  # stereo frame size, px
    height: Range
    size_px: Range  # hts frames are square, px
    pixel_size_um: Range
    # [heart]
    hr_bpm: Range
    hrv_cv: Range
    hr_drift: Range
    p_arrhythmia: Range
    ef_pct: Range
    ef_beat_cv: Range
    major_to_minor_shortening: Range
    systole_fraction: Range
    early_fill_fraction: Range
    kick_duration_fraction: Range
    kick_fraction: Range
    major_um: Range
    aspect: Range
    irregularity: Range
    bend: Range
    # [render]
    view: tuple[str, ...]
    contrast: Range
    blood_opacity: Range
    blur_sigma_px: Range
    read_noise: Range
    photons: Range
    vignette: Range
    flicker: Range
    drift_px_s: Range
    jerk_rate_hz: Range
    jerk_px: Range
    defocus_rate: Range
    occlusion_rate: Range


@dataclass(frozen=True)
class PhantomParams:
    """One draw from a preset: the concrete parameters of one phantom video."""

    preset: str
    setting: str
    fps: float
    duration_s: float
    width: int
    height: int
    size_px: int
    pixel_size_um: float
    hr_bpm: float
    hrv_cv: float
    hr_drift: float
    p_arrhythmia: float
    ef_pct: float
    ef_beat_cv: float
    major_to_minor_shortening: float
    systole_fraction: float
    early_fill_fraction: float
    kick_duration_fraction: float
    kick_fraction: float
    major_um: float
    aspect: float
    irregularity: float
    bend: float
    view: str
    contrast: float
    blood_opacity: float
    blur_sigma_px: float
    read_noise: float
    photons: float
    vignette: float
    flicker: float
    drift_px_s: float
    jerk_rate_hz: float
    jerk_px: float
    defocus_rate: float
    occlusion_rate: float

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) of the frames, px."""
        if self.setting == "hts":
            return self.size_px, self.size_px
        return self.height, self.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = ("video", "heart", "render")
_INT_FIELDS = ("width", "height", "size_px")


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files(__package__) / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: preset file not found")
        text, name = path.read_text(encoding="utf-8"), path.stem
    else:
        ref = resources.files(__package__) / "presets" / f"{name_or_path}.toml"
        if not ref.is_file():
            known = ", ".join(preset_names())
            raise ValueError(f"unknown phantom preset {name_or_path!r}; known: {known}")
        text, name = ref.read_text(encoding="utf-8"), str(name_or_path)
    try:
        return name, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name_or_path}: not valid TOML ({exc})") from None


def _flatten(data: dict[str, Any], source: str) -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"{source}: [{key}] must be a table")
            flat.update(value)
        elif key in ("setting", "base", "description"):
            flat[key] = value
        else:
            raise ValueError(f"{source}: unknown top-level key {key!r}")
    return flat


def load_preset(name_or_path: str | Path = "typical") -> PhantomPreset:
    """A shipped preset by name ("clean", "typical", "hard", "hts") or a TOML file by path."""
    if isinstance(name_or_path, str) and not name_or_path.endswith(".toml"):
        if not Path(name_or_path).exists():
            return _shipped_preset(name_or_path)  # cached: presets are immutable
    return _load_preset(name_or_path)


@functools.lru_cache(maxsize=32)
def _shipped_preset(name: str) -> PhantomPreset:
    return _load_preset(name)


def _load_preset(name_or_path: str | Path) -> PhantomPreset:
    name, data = _read_toml(name_or_path)
    flat = _flatten(data, str(name_or_path))
    base = flat.pop("base", None)
    flat.pop("description", None)
    values: dict[str, Any] = {}
    if base is not None:
        if base == name and not Path(str(name_or_path)).exists():
            raise ValueError(f"preset {name!r} cannot be its own base")
        values = {
            f.name: getattr(load_preset(base), f.name) for f in dataclasses.fields(PhantomPreset)
        }
    fields = {f.name for f in dataclasses.fields(PhantomPreset)} - {"name"}
    unknown = set(flat) - fields
    if unknown:
        raise ValueError(f"{name_or_path}: unknown preset key(s): {', '.join(sorted(unknown))}")
    for key, value in flat.items():
        values[key] = _parse_value(key, value, str(name_or_path))
    values["name"] = name
    missing = fields - set(values)
    if missing:
        raise ValueError(f"{name_or_path}: missing key(s): {', '.join(sorted(missing))}")
    if values["setting"] not in SETTINGS:
        raise ValueError(f"{name_or_path}: setting must be one of {SETTINGS}")
    return PhantomPreset(**values)


def _parse_value(key: str, value: Any, source: str):
    if key == "setting":
        return str(value)
    if key == "view":
        return (value,) if isinstance(value, str) else tuple(str(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value), float(value))
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        lo, hi = float(value[0]), float(value[1])
        if hi < lo:
            raise ValueError(f"{source}: {key} range [{lo}, {hi}] is reversed")
        return (lo, hi)
    raise ValueError(f"{source}: {key} must be a number or a [lo, hi] list, got {value!r}")


def sample_params(preset: PhantomPreset, rng: np.random.Generator, **overrides) -> PhantomParams:
    """Draw one video's parameters from the preset's ranges; `overrides` fix some values."""
    values: dict[str, Any] = {"preset": preset.name, "setting": preset.setting}
    for f in dataclasses.fields(PhantomPreset):
        if f.name in ("name", "setting"):
            continue
        spec = getattr(preset, f.name)
        if f.name == "view":
            values["view"] = str(spec[rng.integers(len(spec))])
        else:
            value = rng.uniform(*spec) if spec[1] > spec[0] else spec[0]
            values[f.name] = value if f.name in _INT_FIELDS else float(value)
    known = {f.name for f in dataclasses.fields(PhantomParams)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name in _INT_FIELDS:  # even frame sizes: video codecs (MJPEG) would crop odd ones
        values[name] = 2 * round(values[name] / 2)
    return PhantomParams(**values)
