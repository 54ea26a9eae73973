"""Manifests: a table of videos with their metadata (plate, well, genotype, treatment, ...).

A manifest is a CSV (or tab-separated .tsv/.txt) file with a ``path`` column and any number of
metadata columns, carried into every output row. Relative paths are resolved against the
manifest's folder. An optional ``masks`` column gives a mask stack or folder per video.
A row may name a folder (searched like a command-line input); every video found there gets
the row's metadata. A row naming a missing file stays in the list, so that it fails alone.
Optional ``fps`` and ``pixel_size_um`` columns give a video's frame rate and pixel size (um)
where its file does not (an AVI carries no pixel size) or is wrong; they win over the file and
over --fps/--pixel-size.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .discover import VideoSource, sources_for

PATH_COLUMN = "path"
MASKS_COLUMN = "masks"
NUMBER_COLUMNS = ("fps", "pixel_size_um")  # per-video acquisition settings, positive numbers
RESERVED = ("video", "status", "error")  # summary.csv columns a metadata column may not shadow


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the problem."""


def read_manifest_table(path: str | Path) -> pd.DataFrame:
    """The manifest as strings (empty cells ''), columns stripped; raises ManifestError."""
    path = Path(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV manifest ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if PATH_COLUMN not in table.columns:
        raise ManifestError(f"{path}: manifest has no '{PATH_COLUMN}' column (columns: "
                            f"{', '.join(table.columns) or 'none'})")
    clash = [c for c in table.columns if c in RESERVED]
    if clash:
        raise ManifestError(f"{path}: column(s) {', '.join(clash)} are reserved for results")
    if table.columns.duplicated().any():
        raise ManifestError(f"{path}: duplicate column names")
    table = table.apply(lambda col: col.str.strip())
    empty = table.index[table[PATH_COLUMN] == ""]
    if len(empty):
        raise ManifestError(f"{path}: empty '{PATH_COLUMN}' in row(s) "
                            f"{', '.join(str(i + 2) for i in empty[:10])} (line numbers)")
    return table


def read_manifest(path: str | Path) -> list[VideoSource]:
    """The videos of a manifest, each with its row's metadata; raises ManifestError."""
    path = Path(path)
    table = read_manifest_table(path)
    base = path.resolve().parent
    meta_columns = [c for c in table.columns
                    if c not in (PATH_COLUMN, MASKS_COLUMN, *NUMBER_COLUMNS)]
    sources: list[VideoSource] = []
    for _, row in table.iterrows():
        metadata = {c: row[c] for c in meta_columns}  # as written: IDs keep leading zeros
        masks = row.get(MASKS_COLUMN, "")
        masks_path = (base / masks) if masks else None
        numbers = {c: _positive_number(row, c, path) for c in NUMBER_COLUMNS if c in row}
        for found in sources_for(base / row[PATH_COLUMN]):
            sources.append(VideoSource(found.path, found.screening,
                                       {**found.metadata, **metadata}, masks_path, **numbers))
    return sources


def _positive_number(row: pd.Series, column: str, path: Path) -> float | None:
    """The row's value of a numeric column; None if empty; ManifestError if not a positive
    number."""
    text = row[column]
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ManifestError(f"{path}: '{column}' must be a positive number, got {text!r} "
                            f"(line {int(row.name) + 2})")
    return value
