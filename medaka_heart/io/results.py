"""Writing results so that nothing half-written is ever left behind.

A video's outputs are written into a hidden staging folder beside their final place and
renamed into place only when every file in it is flushed to the disk; single files are
written by `io.atomic` (a temporary name, fsync, rename). Both honour the user's umask.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import atomic
from .atomic import atomic_path, staging_dir, write_text_atomic


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as CSV (no index) to `path` via a temporary file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json_atomic(data: Any, path: str | Path) -> None:
    """Write JSON (NaN as null, numpy scalars as numbers) to `path` via a temporary file."""
    write_text_atomic(path, json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


@contextmanager
def staged_folder(final: str | Path) -> Iterator[Path]:
    """Yield an empty hidden staging folder; on success it replaces `final` whole.

    Before the rename every file in it is flushed to the disk, so a write error that the
    disk reports late (a full disk) fails the video instead of leaving a short file in a
    folder that looks complete. On any exception the staging folder is removed and `final`
    is left as it was.
    """
    final = Path(final)
    stage = staging_dir(final)
    try:
        try:
            yield stage
            for written in stage.rglob("*"):
                if written.is_file():
                    atomic.fsync_file(written)
        except OSError as exc:  # name the file where it was to be, not its staging place
            if exc.filename and str(exc.filename).startswith(str(stage)):
                where = str(final) + str(exc.filename)[len(str(stage)):]
                raise OSError(exc.errno, exc.strerror, where) from None
            raise
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
