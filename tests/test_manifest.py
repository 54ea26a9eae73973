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
