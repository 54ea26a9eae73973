"""ACQUIFER screening folders: names parsed, frames split per well and ordered, fps from time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from test_batch import small_law

from medaka_heart.cli import main
from medaka_heart.io.discover import discover_sources, source_names
from medaka_heart.io.screening import (
    ScreeningReader,
    fps_from_timestamps,
    parse_frame_name,
    split_screening_files,
)

REAL_NAME = ("WE00037---D012--PO01--LO001--CO6--SL001--PX32500--PW0080--IN0010--TM280--"
             "X113563--Y038077--Z224252--T0015372985.tif")


def frame_name(well_index, well, sl, t_ms, channel=6, position=1, loop=1):
    return (f"WE{well_index:05d}---{well}--PO{position:02d}--LO{loop:03d}--CO{channel}--"
            f"SL{sl:03d}--PX32500--PW0080--IN0010--TM280--X113563--Y038077--Z224252--"
            f"T{t_ms:010d}.tif")


def write_well(folder, well_index, well, frames, interval_ms, *, channel=6, first_gap_ms=0):
    """One TIFF per frame, written in shuffled order; timestamps `interval_ms` apart."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(well_index).permutation(len(frames))
    for i in order:
        t = 15_000_000 + first_gap_ms * (i > 0) + round(i * interval_ms)
        tifffile.imwrite(folder / frame_name(well_index, well, i + 1, t, channel), frames[i])


def test_parse_real_acquifer_name():
    f = parse_frame_name(REAL_NAME)
    assert (f.well_index, f.well, f.position, f.loop, f.channel, f.slice, f.time_ms) == (
        37, "D012", "PO01", "LO001", "CO6", 1, 15372985)
    assert parse_frame_name("frame_001.tif") is None
    assert parse_frame_name(REAL_NAME.replace(".tif", ".png")) is None


def test_fps_is_robust_to_a_slow_first_frame():
    t = [0, 215, 292, 369, 446, 523, 600]  # the real data's pattern: a long first interval
    assert fps_from_timestamps(t) == pytest.approx(1000 / 77)
    assert fps_from_timestamps([5]) is None
    assert fps_from_timestamps([5, 5, 5]) is None


def test_folder_splits_per_well_and_channel_in_slice_order(tmp_path):
    frames = np.arange(12, dtype=np.uint16).reshape(12, 1, 1) * np.ones((1, 4, 5), np.uint16)
    write_well(tmp_path, 37, "D012", frames, 80.0)
    write_well(tmp_path, 37, "D012", frames[:4], 80.0, channel=1)
    write_well(tmp_path, 1, "A001", frames[:6], 50.0, first_gap_ms=200)
    files = sorted(tmp_path.iterdir())
    np.random.default_rng(0).shuffle(files)  # e.g. the order a file system lists them in
    videos, rest = split_screening_files(files)
    assert rest == []
    assert [(v.well, v.channel, len(v.files)) for v in videos] == [
        ("A001", "CO6", 6), ("D012", "CO1", 4), ("D012", "CO6", 12)]
    assert videos[0].fps == pytest.approx(20.0)  # median of 200+0, 50, 50, ...
    reader = ScreeningReader(videos[2])
    assert reader.info.fps == pytest.approx(12.5)
    assert reader.info.fps_source == "timestamps"
    assert reader.info.n_frames == 12
    assert (reader.info.height, reader.info.width) == (4, 5)
    data = np.concatenate(list(reader.chunks(5)))
    np.testing.assert_array_equal(data[:, 0, 0], np.arange(12))  # SL order, not file order


def test_discovery_names_wells_without_opening_files(tmp_path):
    plate = tmp_path / "plate1"
    write_well(plate, 2, "A002", np.zeros((3, 4, 4), np.uint8), 80.0)
    (plate / frame_name(3, "A003", 1, 1)).write_bytes(b"not a tiff")  # opened only when run
    (plate / frame_name(3, "A003", 2, 81)).write_bytes(b"not a tiff")
    sources = discover_sources([str(tmp_path)])
    assert source_names(sources) == ["A002_PO01_LO001_CO6", "A003_PO01_LO001_CO6"]
    assert sources[0].metadata["well"] == "A002"
    assert sources[0].metadata["channel"] == "CO6"
    assert sources[0].display.name.startswith("WE00002---A002--PO01--LO001--CO6--SL*")


def test_screening_plate_end_to_end(tmp_path):
    """Two wells of ellipse-law frames: per-well videos, fps from timestamps, plate.png."""
    plate, masks_dir = tmp_path / "plate", tmp_path / "masks"
    masks_dir.mkdir()
    mask_args = []
    for index, well, hr in [(1, "A001", 110.0), (14, "B002", 160.0)]:
        law = small_law(hr)
        masks = law.masks(60)
        write_well(plate, index, well, (masks * 200).astype(np.uint8), 1000 / law.fps,
                   first_gap_ms=150)
        tifffile.imwrite(masks_dir / f"{well}.tif", masks.astype(np.uint8) * 255)
        mask_args += ["--masks", str(masks_dir / f"{well}.tif")]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["analyze", str(plate), "-o", str(out), *mask_args,
                                       "--pixel-size", "1.5", "--workers", "1",
                                       "--group-by", "well", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv").set_index("video")
    assert list(summary.index) == ["A001_PO01_LO001_CO6", "B002_PO01_LO001_CO6"]
    assert list(summary["well"]) == ["A001", "B002"]
    assert set(summary["channel"]) == {"CO6"}
    assert set(summary["fps_source"]) == {"timestamps"}
    np.testing.assert_allclose(summary["fps"], 15.0, rtol=0.01)
    np.testing.assert_allclose(summary["hr_bpm"], [110.0, 160.0], rtol=0.01)
    assert (out / "plate.png").exists()
