"""Resuming a run: which videos already have complete results made the same way.

A video's results are reused when `OUT/<name>/result.json` exists (it is written last, after
the video's folder is in place), its fingerprint equals the one this run computes, and
frames.csv, beats.csv and provenance.json (and masks.tif, trace.png and montage.png, or
overlay.avi when asked for) are there. Figures do not change the numbers, so they are not
in the fingerprint: a run that asks for figures an earlier one did not make redoes the video.

The fingerprint is a SHA-256 of: the package version, the analysis configuration (without
`segment.threads`, which only changes speed), the model (SHA-256 of its file(s)) or, in
masks mode, the mask files, the input file(s) (resolved path, size and modification time of
every file), and the options that change results (--fps, --pixel-size, --save-masks).
Change any of them and the video is analysed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.discover import VideoSource
from ..io.video import frame_files
from .jobs import RunOptions, load_default_segmenter

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
REQUIRED_FILES = ("frames.csv", "beats.csv", "provenance.json")


def files_signature(paths: list[Path]) -> list[list]:
    """[name, size, mtime_ns] of each file (missing files: [name, None, None])."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append([str(p), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(p), None, None])
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def path_signature(path: Path | None) -> str | None:
    """Digest of what is at `path`: a file's size and time, or those of a folder's frames."""
    if path is None:
        return None
    if path.is_dir():
        return _digest(files_signature(frame_files(path)))
    return _digest(files_signature([path]))


def model_identity(options: RunOptions) -> str | None:
    """SHA-256 of the model file(s) the segmenter will load; None when no segmenter is used."""
    factory = options.segmenter_factory
    if factory is None:
        return None
    if factory is not load_default_segmenter:  # e.g. a test's fake: identify it by name
        return f"{factory.__module__}.{getattr(factory, '__qualname__', repr(factory))}"
    model: str | Path | None = options.config.segment.model
    if model is None:
        from ..runtime import default_model_path

        model = default_model_path()
    from ..model.folder import model_hash

    try:
        return model_hash(model)
    except OSError as exc:  # the segmenter says so when it is made; the job then fails
        return f"unreadable: {exc}"


def fingerprint_inputs(source: VideoSource, options: RunOptions, model: str | None
                       ) -> dict[str, Any]:
    """Everything the results of `source` depend on (see the module docstring)."""
    config = options.config.to_dict()
    config["segment"] = {k: v for k, v in config["segment"].items() if k != "threads"}
    files = list(source.screening.files) if source.screening is not None else None
    return {
        "medaka_heart_version": __version__,
        "config": config,
        "model": model if source.masks is None else None,
        "input": str(source.display),
        "input_files": _digest(files_signature(files)) if files else path_signature(source.path),
        "masks": str(source.masks) if source.masks is not None else None,
        "masks_files": path_signature(source.masks),
        "fps": source.fps or options.video.fps,
        "pixel_size_um": source.pixel_size_um or options.video.pixel_size_um,
        "save_masks": options.video.save_masks,
    }


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of `fingerprint_inputs`."""
    return _digest(inputs)


PLOT_FILES = ("trace.png", "montage.png")


def reusable_row(folder: Path, expected: str, *, save_masks: bool = False, plots: bool = False,
                 overlay_video: bool = False) -> dict[str, Any] | None:
    """Summary row of the complete results in `folder` made with fingerprint `expected`, or None."""
    try:
        record = json.loads((folder / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != expected:
        return None
    needed = (REQUIRED_FILES + (("masks.tif",) if save_masks else ())
              + (PLOT_FILES if plots else ()) + (("overlay.avi",) if overlay_video else ()))
    if not all((folder / f).is_file() for f in needed):
        return None
    row = record.get("summary")
    if not isinstance(row, dict):
        return None
    return {k: float("nan") if v is None else v for k, v in row.items()}  # JSON null was NaN
