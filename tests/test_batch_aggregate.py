"""conditions.csv and plate.png from a summary table with known values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medaka_heart.aggregate import conditions_table
from medaka_heart.report.plate import parse_well, plate_grid, plate_layout, plot_plate


@pytest.fixture
def summary():
    return pd.DataFrame({
        "video": list("abcdef"),
        "well": ["A001", "A002", "B001", "B002", "H012", "C003"],
        "dose": ["0", "0", "10", "10", "10", "0"],
        "status": ["ok", "skipped", "ok", "ok", "failed", "ok"],
        "hr_bpm": [100.0, 110.0, 150.0, 170.0, np.nan, 120.0],
        "ef_pct": [50.0, 60.0, 30.0, 40.0, np.nan, np.nan],
        "fs_minor_pct": [20.0, 22.0, 10.0, 12.0, np.nan, 24.0],
    })


def test_conditions_mean_sd_and_counts(summary):
    table = conditions_table(summary, ["dose"]).set_index("dose")
    assert list(table.index) == ["0", "10"]
    assert table.loc["0", "n_videos"] == 3
    assert table.loc["10", "n_failed"] == 1
    assert table.loc["0", "hr_bpm_mean"] == pytest.approx(110.0)
    assert table.loc["0", "hr_bpm_sd"] == pytest.approx(10.0)  # ddof=1 of 100, 110, 120
    assert table.loc["0", "ef_pct_mean"] == pytest.approx(55.0)  # NaN EF left out
    assert table.loc["10", "hr_bpm_sd"] == pytest.approx(np.std([150, 170], ddof=1))
    overall = conditions_table(summary)
    assert len(overall) == 1
    assert overall.loc[0, "n_videos"] == 5
    with pytest.raises(ValueError, match="genotype"):
        conditions_table(summary, ["genotype"])


@pytest.mark.parametrize(("well", "pos"), [("D012", (3, 11)), ("d12", (3, 11)), ("A1", (0, 0)),
                                           ("P024", (15, 23)), ("X", None), ("A000", None)])
def test_parse_well(well, pos):
    assert parse_well(well) == pos


def test_plate_grid_and_picture(summary, tmp_path):
    assert plate_layout(summary["well"]) == (8, 12)
    assert plate_layout(pd.Series(["P024"])) == (16, 24)
    grid = plate_grid(summary, "hr_bpm", (8, 12))
    assert grid[0, 0] == 100
    assert grid[0, 1] == 110
    assert grid[1, 1] == 170
    assert np.isnan(grid[7, 11])  # failed well: no value
    assert np.isfinite(grid).sum() == 5
    path = plot_plate(summary, tmp_path / "plate.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert plot_plate(summary.drop(columns="well"), tmp_path / "none.png") is None
