"""Writing results so that nothing half-written is ever left behind.

A video's outputs are written into a hidden staging folder beside their final place and
renamed into place only when complete; single files are written to a temporary name and
renamed (`os.replace` is atomic on one filesystem).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as CSV (no index) to `path` via a temporary file."""
    path = Path(path)
    with _temporary_beside(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json_atomic(data: Any, path: str | Path) -> None:
    """Write JSON (NaN as null, numpy scalars as numbers) to `path` via a temporary file."""
    path = Path(path)
    with _temporary_beside(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


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
def _temporary_beside(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_folder(final: str | Path) -> Iterator[Path]:
    """Yield an empty hidden staging folder; on success it replaces `final` whole.

    On any exception the staging folder is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield stage
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
