"""Batch runs: failure isolation, resume by fingerprint, crash safety, read-only output.

Videos are tiny TIFF stacks of the ellipse law with their masks (`--masks` mode: no model).
`write_video` is shared with the other test_batch*/manifest/screening/dask tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from conftest import EllipseLaw

from medaka_heart.batch import LOCK_FILE, OutputError, run_batch
from medaka_heart.cli import main
from medaka_heart.config import Config
from medaka_heart.io.discover import VideoSource
from medaka_heart.options import BatchOptions
from medaka_heart.schema import BEAT_COLUMNS, RHYTHM_BEAT_COLUMNS, SUMMARY_COLUMNS

SMALL = {"height": 48, "width": 64, "a0": 16.0, "b0": 10.0, "pixel_size_um": 1.5}


def small_law(hr_bpm: float = 130.0) -> EllipseLaw:
    return EllipseLaw(hr_bpm=hr_bpm, **SMALL)


def write_video(folder: Path, stem: str, hr_bpm: float = 130.0, n_frames: int = 60
                ) -> tuple[Path, Path]:
    """`stem.tif` (uint8 frames, fps in the metadata) and `stem_masks.tif` of the ellipse law."""
    law = small_law(hr_bpm)
    masks = law.masks(n_frames)
    rng = np.random.default_rng(abs(hash(stem)) % 2**32)
    frames = rng.integers(0, 40, masks.shape, dtype=np.uint8) + 150 * masks.astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    video, mask_path = folder / f"{stem}.tif", folder / f"{stem}_masks.tif"
    tifffile.imwrite(video, frames, metadata={"fps": law.fps})
    tifffile.imwrite(mask_path, masks.astype(np.uint8) * 255)
    return video, mask_path


def sources_of(pairs) -> list[VideoSource]:
    return [VideoSource(v, masks=m) for v, m in pairs]


def test_corrupt_video_in_the_middle_fails_alone(tmp_path):
    pairs = [write_video(tmp_path, f"v{i}") for i in range(4)]
    bad = tmp_path / "v1.tif"
    bad.write_bytes(bad.read_bytes()[:300])  # truncated in the middle of the batch
    summary = run_batch(sources_of(pairs), [f"v{i}" for i in range(4)], tmp_path / "out", Config(),
                        batch=BatchOptions(workers=2, show_progress=False))
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary["video"]) == ["v0", "v1", "v2", "v3"]  # input order, not finish order
    assert list(summary["status"]) == ["ok", "failed", "ok", "ok"]
    assert "v1.tif" in summary.loc[1, "error"]
    np.testing.assert_allclose(summary.loc[[0, 2, 3], "hr_bpm"], 130.0, rtol=0.01)
    assert not (tmp_path / "out" / "v1").exists()
    beats = pd.read_csv(tmp_path / "out" / "beats_all.csv")
    assert list(beats.columns) == ["video", *BEAT_COLUMNS, *RHYTHM_BEAT_COLUMNS]
    assert set(beats["video"]) == {"v0", "v2", "v3"}
    assert "v1.tif" in (tmp_path / "out" / "run.log").read_text()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_rerun_reuses_complete_results_and_redoes_changed_ones(tmp_path):
    pairs = [write_video(tmp_path, f"v{i}", hr_bpm=100 + 20 * i) for i in range(3)]
    out, names = tmp_path / "out", ["v0", "v1", "v2"]
    first = run_batch(sources_of(pairs), names, out, Config(), batch=BatchOptions(workers=1,
                                                                                  show_progress=False))
    before = {n: _files(out / n) for n in names}
    again = run_batch(sources_of(pairs), names, out, Config(), batch=BatchOptions(workers=1,
                                                                                  show_progress=False))
    assert list(again["status"]) == ["reused"] * 3
    metrics = [c for c in SUMMARY_COLUMNS if c not in ("status",)]
    pd.testing.assert_frame_equal(first[metrics], again[metrics])
    assert {n: _files(out / n) for n in names} == before  # nothing rewritten

    os.utime(pairs[1][0], ns=(1, 1))  # the input of v1 changed: v1 only is redone
    third = run_batch(sources_of(pairs), names, out, Config(), batch=BatchOptions(workers=1,
                                                                                  show_progress=False))
    assert list(third["status"]) == ["reused", "ok", "reused"]

    changed = Config().__class__(cycles=Config().cycles.__class__(hr_max_bpm=290.0))
    fourth = run_batch(sources_of(pairs), names, out, changed, batch=BatchOptions(workers=1,
                                                                                  show_progress=False))
    assert list(fourth["status"]) == ["ok"] * 3  # another configuration: all redone

    forced = run_batch(sources_of(pairs), names, out, changed,
                       batch=BatchOptions(workers=1, force=True, show_progress=False))
    assert list(forced["status"]) == ["ok"] * 3
    record = json.loads((out / "v2" / "result.json").read_text())
    assert record["fingerprint_of"]["config"]["cycles"]["hr_max_bpm"] == 290.0


def test_incomplete_results_are_redone(tmp_path):
    pairs = [write_video(tmp_path, "v0")]
    out = tmp_path / "out"
    run_batch(sources_of(pairs), ["v0"], out, Config(), batch=BatchOptions(workers=1,
                                                                           show_progress=False))
    (out / "v0" / "beats.csv").unlink()  # e.g. deleted by hand
    again = run_batch(sources_of(pairs), ["v0"], out, Config(), batch=BatchOptions(workers=1,
                                                                                   show_progress=False))
    assert again.loc[0, "status"] == "ok"
    assert (out / "v0" / "beats.csv").exists()


def _assert_read_only_is_one_clear_error(tmp_path, out):
    video, masks = write_video(tmp_path, "v0")
    with pytest.raises(OutputError, match="not writable"):
        run_batch(sources_of([(video, masks)]), ["v0"], out, Config(),
                  batch=BatchOptions(show_progress=False))
    result = CliRunner().invoke(main, ["analyze", str(video), "--masks", str(masks), "-o",
                                       str(out), "--no-progress"])
    assert result.exit_code == 1
    assert "not writable" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(out.iterdir()) == []  # nothing half-written


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions")
def test_read_only_output_folder_is_one_clear_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        _assert_read_only_is_one_clear_error(tmp_path, out)
    finally:
        out.chmod(0o755)


def test_unwritable_output_folder_is_one_clear_error(tmp_path, monkeypatch):
    """The same as root (who may write anywhere): the write probe is refused."""
    import medaka_heart.batch as batch

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(batch.tempfile, "mkstemp", refuse)
    out = tmp_path / "out"
    out.mkdir()
    _assert_read_only_is_one_clear_error(tmp_path, out)


def test_sigkill_half_way_then_rerun_completes(tmp_path):
    n = 8
    pairs = [write_video(tmp_path / "in", f"v{i}", n_frames=150) for i in range(n)]
    out = tmp_path / "out"
    args = [sys.executable, "-m", "medaka_heart", "analyze", *[str(v) for v, _ in pairs],
            "-o", str(out), "--workers", "1", "--no-progress"]
    for _, m in pairs:
        args += ["--masks", str(m)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("v*/result.json"))) >= 2:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(p.parent.name for p in out.glob("v*/result.json"))
    assert 2 <= len(finished) < n, "the kill should land half way"
    snapshot = {name: _files(out / name) for name in finished}
    for name in finished:  # every finished video is whole
        assert {"frames.csv", "beats.csv", "provenance.json", "result.json"} <= set(
            snapshot[name])
        pd.read_csv(out / name / "frames.csv")

    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("video")
    assert len(summary) == n
    assert set(summary.loc[finished, "status"]) == {"reused"}
    assert set(summary.drop(index=finished)["status"]) == {"ok"}
    np.testing.assert_allclose(summary["hr_bpm"], 130.0, rtol=0.01)
    assert {name: _files(out / name) for name in finished} == snapshot  # left intact
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name != LOCK_FILE]
