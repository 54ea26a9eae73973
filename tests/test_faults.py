"""The faults a real lab hits, each as a user would trigger it (real files, real processes).

Together with test_bad_inputs.py (broken, missing and odd inputs), this is the fault
catalogue of the README's "What can go wrong" table.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from test_bad_inputs import analyze, beating, write_avi, write_masks  # noqa: F401 (fixture)

import medaka_heart.io.atomic as atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------------
# the disk


def test_a_full_disk_fails_the_video_and_leaves_no_short_file(tmp_path, beating, monkeypatch):
    """ENOSPC while montage.png is written (injected where the file is flushed)."""
    masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    real = atomic.fsync_file

    def full(path):
        if "montage.png" in Path(path).name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path)

    monkeypatch.setattr(atomic, "fsync_file", full)
    result, summary = analyze(tmp_path / "out", str(video), "--masks",
                              str(write_masks(tmp_path / "m.tif", masks)), plots=True)
    assert result.exit_code == 1
    row = summary.iloc[0]
    assert row["status"] == "failed"
    assert f"no space left on device: {tmp_path / 'out' / 'heart' / 'montage.png'}" in row["error"]
    assert not (tmp_path / "out" / "heart").exists()  # no folder that looks complete


def test_a_summary_that_cannot_be_written_is_said(tmp_path, beating, monkeypatch):
    masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    import medaka_heart.batch as batch

    def full(frame, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(batch, "write_csv_atomic", full)
    result, _ = analyze(tmp_path / "out", str(video), "--masks",
                        str(write_masks(tmp_path / "m.tif", masks)))
    assert result.exit_code == 1
    assert "no space left on device" in result.output
    assert "summary.csv) could not be written" in result.output
    assert "1 finished video(s) are complete" in result.output
    assert (tmp_path / "out" / "heart" / "beats.csv").is_file()


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"),
                         [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)])
def test_results_honour_the_umask(tmp_path, beating, mask, file_mode, dir_mode):
    masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    mask_file = write_masks(tmp_path / "m.tif", masks)
    old = os.umask(mask)
    try:
        result, _ = analyze(tmp_path / "out", str(video), "--masks", str(mask_file),
                            "--save-masks", plots=True)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"summary.csv", "report.html", "beats.csv", "masks.tif", "trace.png",
            "result.json"} <= {p.name for p in files}
    assert {p.name: _mode(p) for p in files} == {p.name: file_mode for p in files}
    assert _mode(out / "heart") == dir_mode


def test_atomic_write_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    target = tmp_path / "a.csv"
    target.write_text("old\n")

    def fail(path):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

    monkeypatch.setattr(atomic, "fsync_file", fail)
    with pytest.raises(OSError, match=r"a\.csv"):
        atomic.write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_describe_os_error_is_one_line_naming_the_file():
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "OUT/v/montage.png")
    assert atomic.describe_os_error(exc) == "no space left on device: OUT/v/montage.png"
