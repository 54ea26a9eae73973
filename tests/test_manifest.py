"""Manifests: paths resolved against the manifest, metadata into every output, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from test_batch import write_video

from medaka_heart.cli import main
from medaka_heart.io.manifest import ManifestError, read_manifest


@pytest.fixture
def plate(tmp_path):
    """Four videos in videos/, two genotypes at different heart rates, plus a missing one."""
    rows = []
    for i, (genotype, hr) in enumerate([("wt", 120), ("wt", 120), ("mut", 150), ("mut", 150)]):
        write_video(tmp_path / "videos", f"e{i}", hr_bpm=hr)
        rows.append({"well": f"A{i + 1:03d}", "path": f"videos/e{i}.tif",
                     "masks": f"videos/e{i}_masks.tif", "genotype": genotype,
                     "concentration": "0.5"})
    rows.append({"well": "B001", "path": "videos/gone.tif", "masks": "videos/e0_masks.tif",
                 "genotype": "wt", "concentration": "0.5"})
    manifest = tmp_path / "plate.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_read_manifest_resolves_paths_and_keeps_metadata(plate, tmp_path):
    sources = read_manifest(plate)
    assert [s.path for s in sources[:4]] == [(tmp_path / f"videos/e{i}.tif").resolve()
                                            for i in range(4)]
    assert sources[4].path == tmp_path / "videos/gone.tif"  # missing: kept, fails when run
    assert sources[2].masks == tmp_path / "videos/e2_masks.tif"
    assert dict(sources[2].metadata) == {"well": "A003", "genotype": "mut",
                                         "concentration": "0.5"}


def test_manifest_run_carries_metadata_and_groups_conditions(plate, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["analyze", "--manifest", str(plate), "-o", str(out),
                                       "--group-by", "genotype", "--workers", "1",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:5]) == ["video", "well", "genotype", "concentration", "status"]
    assert list(summary["status"]) == ["ok"] * 4 + ["failed"], summary["error"].tolist()
    assert "gone.tif" in summary.loc[4, "error"]
    assert "no such file" in summary.loc[4, "error"]
    beats = pd.read_csv(out / "beats_all.csv")
    assert list(beats.columns[:5]) == ["video", "well", "genotype", "concentration", "beat"]
    assert set(beats.groupby("video")["genotype"].first()) == {"wt", "mut"}
    conditions = pd.read_csv(out / "conditions.csv").set_index("genotype")
    assert conditions.loc["wt", "n_videos"] == 2
    assert conditions.loc["wt", "n_failed"] == 1
    assert conditions.loc["mut", "n_videos"] == 2
    assert conditions.loc["mut", "n_failed"] == 0
    np.testing.assert_allclose(conditions.loc[["wt", "mut"], "hr_bpm_mean"], [120, 150],
                               rtol=0.01)
    np.testing.assert_allclose(conditions.loc["mut", "fs_minor_pct_mean"], 25.0, rtol=0.03)
    assert (out / "plate.png").stat().st_size > 1000  # wells known: a plate heat map


def test_manifest_without_path_column_is_a_clear_error(tmp_path):
    manifest = tmp_path / "plate.csv"
    manifest.write_text("well,file\nA001,a.avi\n")
    with pytest.raises(ManifestError, match="no 'path' column"):
        read_manifest(manifest)
    result = CliRunner().invoke(main, ["analyze", "--manifest", str(manifest), "-o",
                                       str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "no 'path' column" in result.output
    assert "well, file" in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_group_by_column_is_a_clear_error(plate, tmp_path):
    result = CliRunner().invoke(main, ["analyze", "--manifest", str(plate), "-o",
                                       str(tmp_path / "out"), "--group-by", "treatment"])
    assert result.exit_code != 0
    assert "--group-by treatment: no such column" in result.output
    assert "genotype" in result.output


def test_manifest_gives_each_video_its_own_fps_and_pixel_size(tmp_path):
    """Per-row acquisition settings win over the file's and the run's; they scale the results."""
    write_video(tmp_path / "videos", "e0", hr_bpm=120)
    write_video(tmp_path / "videos", "e1", hr_bpm=120)
    manifest = tmp_path / "plate.csv"
    pd.DataFrame({"path": ["videos/e0.tif", "videos/e1.tif"],
                  "masks": ["videos/e0_masks.tif", "videos/e1_masks.tif"],
                  "pixel_size_um": ["1.0", "2.0"], "fps": ["", ""]}).to_csv(manifest, index=False)
    sources = read_manifest(manifest)
    assert [s.pixel_size_um for s in sources] == [1.0, 2.0]
    assert [s.fps for s in sources] == [None, None]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["analyze", "--manifest", str(manifest), "-o", str(out),
                                       "--pixel-size", "5", "--workers", "1", "--no-progress",
                                       "--no-plots"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv").set_index("video")
    assert list(summary["pixel_size_um"]) == [1.0, 2.0]
    assert list(summary["pixel_size_source"]) == ["user", "user"]
    assert summary.loc["e1", "edv_pl"] == pytest.approx(8 * summary.loc["e0", "edv_pl"], rel=1e-6)
    assert "pixel_size_um" not in summary.columns.drop("pixel_size_um")  # not copied as metadata


@pytest.mark.parametrize("value", ["0", "-1", "fast"])
def test_manifest_with_a_bad_number_is_a_clear_error(tmp_path, value):
    manifest = tmp_path / "plate.csv"
    pd.DataFrame({"path": ["a.avi"], "fps": [value]}).to_csv(manifest, index=False)
    with pytest.raises(ManifestError, match=r"plate\.csv: 'fps' must be a positive number.*line 2"):
        read_manifest(manifest)
