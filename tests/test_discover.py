"""Inputs to videos: files, folders searched by extension, globs, distinct output names."""

from __future__ import annotations

import numpy as np
import tifffile

from medaka_heart.io.discover import discover_sources, expand_inputs, output_names, source_names


def _stack(path, n=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros((n, 8, 8), np.uint8), photometric="minisblack")


def test_folders_are_searched_recursively_by_known_extension(tmp_path):
    _stack(tmp_path / "a" / "x.tif")
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "y.avi").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("no video")
    _stack(tmp_path / "a" / ".hidden" / "z.tif")
    frames = tmp_path / "a" / "frames"
    for i in range(3):
        _stack(frames / f"f{i}.tif", n=1)  # single-page images: the folder is one video
    found = expand_inputs([str(tmp_path / "a")])
    assert found == [(tmp_path / "a" / p).resolve() for p in ("x.tif", "b/y.avi", "frames")]


def test_globs_files_and_duplicates(tmp_path):
    _stack(tmp_path / "p" / "e1.tif")
    _stack(tmp_path / "q" / "e1.tif")
    missing = tmp_path / "missing.avi"
    found = expand_inputs([str(tmp_path / "*" / "e1.tif"), str(tmp_path / "p" / "e1.tif"),
                           str(missing)])
    assert found == [(tmp_path / "p/e1.tif").resolve(), (tmp_path / "q/e1.tif").resolve(),
                     missing]  # each once; a missing file kept so that it fails visibly
    assert output_names(found) == ["p_e1", "q_e1", "missing"]
    assert source_names(discover_sources([str(tmp_path / "*" / "e1.tif")])) == ["p_e1", "q_e1"]
