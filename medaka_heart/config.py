"""Typed configuration: every default of the analysis is set here, once.

A TOML file overrides any subset of the sections below, for example::

    [cycles]
    hr_min_bpm = 60

    [segment]
    batch_size = 32
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints


@dataclass(frozen=True)
class IOConfig:
    """Reading videos and writing results."""

    default_pixel_size_um: float = 1.115  # HeartSeg set-up (Nikon SMZ18, 6x zoom)
    chunk_frames: int = 64  # frames decoded and processed at once


@dataclass(frozen=True)
class PreprocessConfig:
    """Segmenter input intensity: per-frame percentiles mapped to 0 and 1.

    None = the model folder's own values (what it was trained with); a number overrides them.
    The input size is always the model's.
    """

    low_percentile: float | None = None
    high_percentile: float | None = None


@dataclass(frozen=True)
class CycleConfig:
    """Diastole/systole detection on the ventricle volume signal."""

    signal: str = "volume_pl"  # frames.csv column the beats are found on
    hr_min_bpm: float = 40.0  # plausible heart-rate range of medaka
    hr_max_bpm: float = 300.0
    min_peak_distance_periods: float = 0.5  # minimal ED-ED spacing, in dominant periods
    min_prominence_fraction: float = 0.25  # of the signal's robust peak-to-peak amplitude
    smooth_sigma_periods: float = 0.06  # Gaussian smoothing before peak finding
    max_missing_fraction: float = 0.5  # more NaN frames than this: no beats


@dataclass(frozen=True)
class RhythmConfig:
    """Fusing the volume signal's beats with the model-free intensity beats (rhythm.py)."""

    min_intensity_periodicity: float = 0.3  # below: the intensity trace does not time beats
    agreement_pct: float = 5.0  # the volume signal's beats are used within this of the rate
    min_segmentation_periodicity: float = 0.5  # volume signal's beat similarity to be trusted
    max_thumbnail_frames: int = 16384  # frames kept (~48-px thumbnails, 7-10 kB each)


RUNTIMES = ("auto", "torch", "onnx", "openvino")  # what runs the network (runtime.ModelRuntime)


@dataclass(frozen=True)
class SegmentConfig:
    """U-Net inference (runtime.py) and finding the heart (locate.py)."""

    model: str | None = None  # model folder or checkpoint; None = shipped default
    device: str = "auto"  # auto | cpu | cuda | mps
    runtime: str = "auto"  # auto | torch | onnx | openvino; auto: on the CPU OpenVINO, else
    # ONNX Runtime (onnx), where the model folder ships a model.onnx checked against its weights
    # (no torch import), else torch
    int8: bool = False  # OpenVINO: the fine pass over every frame by the model folder's checked
    # int8 network (model.int8.xml), where it has one: ~6-9 % faster, masks not quite float's
    self_adapt: bool = True  # per video, fine-tune the fine pass on a made-up beat of the
    # largest mask of its first seconds, then segment again where the adapted masks pass their
    # checks (model/self_adapt.py): end-systole, so ejection fraction, on microscopes the
    # network was not trained for; ~8 s more per video on 2 cores (off: the network alone)
    self_adapt_steps: int = 20  # its optimiser steps (batches of 8 crops)
    batch_size: int = 16  # frames per forward pass at the fine size, fewer for larger (x4 on CUDA)
    threshold: float | None = None  # probability threshold; None = the model's tuned one
    threads: int | None = None  # CPU threads of the network; None = all cores / workers
    coarse_every: int = 8  # the coarse pass looks at every n-th frame of a chunk
    refine: int = 1  # fine passes that re-centre and re-size a candidate crop (0 = none)
    candidates: int = 1  # coarse candidates checked by the fine pass (with refine >= 1)
    search_every: int = 1  # with n > 1 only a video's first, last and every n-th chunk search
    # the whole frame; the others check the crop handed on and search only where it fails
    beat_gate: float = 0.5  # candidates beating less than this share of the strongest beat
    # power count for less, in proportion (0 = the beat is not used: the surest region wins)


@dataclass(frozen=True)
class QCConfig:
    """Quality-control thresholds (see qc.py): outside one, a video is flagged.

    A flag means "look at this video before trusting its numbers" (qc_pass is False); a
    finding (irregular rhythm) is biology worth a look and leaves qc_pass as it is.
    """

    max_empty_fraction: float = 0.2  # empty_masks: ventricle mask empty in more frames than this
    min_beats: int = 3  # too_few_beats: fewer detected beats than this
    min_confidence: float = 0.6  # low_confidence: median per-frame segmentation confidence (0-1)
    min_periodicity: float = 0.5  # weak_periodicity: median correlation of consecutive beats
    min_rhythm_periodicity: float = 0.4  # weak_rhythm: repeatability of the train's signal
    max_hr_difference_pct: float = 5.0  # hr_mismatch: masks' rate vs the heart's, %
    hr_min_bpm: float = 50.0  # implausible_hr: median heart rate outside this range (medaka)
    hr_max_bpm: float = 250.0
    ef_min_pct: float = 10.0  # implausible_ef: mean ejection fraction outside this range
    ef_max_pct: float = 90.0
    max_motion_diameters: float = 0.5  # large_motion: 95th-percentile centroid travel / diameter
    max_rr_cv_pct: float = 15.0  # irregular_rhythm (finding): coefficient of variation of RR
    skipped_beat_ratio: float = 1.6  # irregular_rhythm (finding): an RR > this x median RR


@dataclass(frozen=True)
class Config:
    """The whole analysis configuration."""

    io: IOConfig = field(default_factory=IOConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    cycles: CycleConfig = field(default_factory=CycleConfig)
    rhythm: RhythmConfig = field(default_factory=RhythmConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    qc: QCConfig = field(default_factory=QCConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, for provenance files."""
        return dataclasses.asdict(self)


def _type_name(hint: Any) -> str:
    names = {float: "a number", int: "a whole number", str: "a string", bool: "true or false",
             type(None): "nothing"}
    if get_origin(hint) in (UnionType, Union):
        return " or ".join(_type_name(a) for a in get_args(hint))
    if get_origin(hint) is tuple:
        return "a list"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def matches(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field's type (an int is a fine float; a bool no number)."""
    origin = get_origin(hint)
    if origin in (UnionType, Union):
        return any(matches(value, a) for a in get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args,
                                                                             strict=True))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint) or dataclasses.is_dataclass(hint)
    return True


def build_section(cls: type, values: Any, where: str) -> Any:
    """`cls(**values)` for the [where] section of a TOML file; an unknown key or a value of
    the wrong type is a ValueError naming the section.key, the value and the type expected."""
    if not isinstance(values, dict):
        raise ValueError(f"[{where}] must be a table of keys, got {values!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
    for key, value in values.items():
        if not matches(value, hints[key]):
            raise ValueError(f"[{where}] {key} = {value!r}: expected {_type_name(hints[key])}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a Config from a nested dict; unknown sections or keys and values of the wrong
    type are an error (one line: section.key, value, the type expected)."""
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    kwargs = {}
    for name, values in data.items():
        if name not in sections:
            raise ValueError(f"unknown config section [{name}]; known: {', '.join(sections)}")
        kwargs[name] = build_section(type(getattr(Config(), name)), values, name)
    return Config(**kwargs)


def load_config(path: str | Path | None = None) -> Config:
    """Defaults, overridden by the TOML file at `path` if given."""
    if path is None:
        return Config()
    return parse_toml(path, config_from_dict, what="config file")


def parse_toml(path: str | Path, build, *, what: str):
    """`build(dict)` of the TOML file at `path`; every error names the file (one line)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    try:
        return build(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def with_overrides(config: Config, section: str, **values: Any) -> Config:
    """Copy of `config` with keys of one section replaced; None values are ignored."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return config
    updated = dataclasses.replace(getattr(config, section), **values)
    return dataclasses.replace(config, **{section: updated})
