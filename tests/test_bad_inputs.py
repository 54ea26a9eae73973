"""Bad inputs through the real CLI: one clear line naming the file, a row in summary.csv.

Every case runs `medaka-heart analyze` (click's CliRunner, in this process, `--workers 1`)
and checks the contract: the run ends (a SIGALRM guard turns a hang into a failure), no
traceback is printed, nothing hidden (staging folders, temporary files) is left in the
output folder, and summary.csv has a 'failed' row whose error names the file, or an 'ok'
row where that is the honest answer (e.g. 0 beats and NaN for a video with no ventricle).

Where a segmenter would be needed, a tiny fake one (`FakeSegmenter`: the percentile-
normalised image itself, thresholded at 0.5) replaces the U-Net, so no model and no torch
are needed; only the bogus-checkpoint case loads the real segmenter code.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

from medaka_heart.batch import LOCK_FILE
from medaka_heart.cli import main
from medaka_heart.io.video import VideoError, open_video
from medaka_heart.preprocess import prepare_input, restore_geometry

HANG_S = 60  # any one CLI call taking longer than this is a hang


# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def no_hang():
    """Fail a test (instead of hanging CI) if it runs longer than HANG_S seconds."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"no result after {HANG_S} s: the CLI hangs")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class FakeSegmenter:
    """Ventricle probability = the frame itself, grey-scaled and normalised (1st-99th pct)."""

    def segment_video(self, chunks, fps=None):
        for frames in chunks():
            small = prepare_input(frames, 64)
            prob = restore_geometry(small, frames.shape[1], frames.shape[2])
            yield frames, types.SimpleNamespace(masks=prob >= 0.5,
                                                confidence=np.ones(len(frames)))

    def provenance(self):
        return {"model": "fake"}


@pytest.fixture
def fake_segmenter(monkeypatch, tmp_path):
    """Make `analyze` (without --masks) use FakeSegmenter: a stand-in `medaka_heart.segment`."""
    from medaka_heart.run import jobs

    fake = types.ModuleType("medaka_heart.segment")
    fake.Segmenter = types.SimpleNamespace(from_config=lambda *args, **kw: FakeSegmenter())
    model_dir = tmp_path / "fake-model"  # a default model is "installed" for the stand-in
    model_dir.mkdir()
    (model_dir / "model.pt").write_text("stand-in\n")
    fake.default_model_path = lambda: model_dir
    monkeypatch.setitem(sys.modules, "medaka_heart.segment", fake)
    monkeypatch.setattr(jobs, "_SEGMENTERS", {})  # no segmenter cached by an earlier test


def analyze(out: Path, *args: str, plots: bool = False) -> tuple[object, pd.DataFrame | None]:
    """Run `medaka-heart analyze ARGS -o OUT` in this process; (result, summary.csv or None).

    The QC plots (about 3 s a video) are drawn only where asked for: for degenerate content.
    """
    extra = [] if plots else ["--no-plots"]
    result = CliRunner().invoke(main, ["analyze", *args, "-o", str(out), "--no-progress",
                                       "--workers", "1", *extra])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    hidden = ([p for p in out.rglob("*") if p.name.startswith(".") and p.name != LOCK_FILE]
              if out.exists() else [])  # the lock file stays: deleting it would race
    assert not hidden, f"half-written output left behind: {hidden}"
    summary = pd.read_csv(out / "summary.csv") if (out / "summary.csv").exists() else None
    return result, summary


def assert_failed(result, summary: pd.DataFrame, path: Path, message: str) -> None:
    """One failed row whose one-line error names `path` and matches `message`; exit code 1."""
    assert result.exit_code == 1, result.output
    assert list(summary["status"]) == ["failed"]
    error = summary["error"].iloc[0]
    assert "\n" not in error, error
    assert path.name in error, error
    assert pd.Series([error]).str.contains(message, regex=True).iloc[0], error
    assert "0/1 video(s) analysed" in result.output


def write_avi(path: Path, frames: np.ndarray, fps: float = 15.0) -> Path:
    """(T, H, W) uint8 gray frames -> MJPG AVI."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_masks(path: Path, masks: np.ndarray) -> Path:
    tifffile.imwrite(path, masks.astype(np.uint8) * 255, compression="zlib",
                     photometric="minisblack")
    return path


# ---------------------------------------------------------------------------------------------
# broken or unreadable files


def test_truncated_avi(tmp_path, beating):
    masks, frames = beating
    whole = write_avi(tmp_path / "whole.avi", frames).read_bytes()
    video = tmp_path / "cut.avi"
    video.write_bytes(whole[: len(whole) // 2])
    result, summary = analyze(tmp_path / "out", str(video), "--masks",
                              str(write_masks(tmp_path / "m.tif", masks)))
    assert_failed(result, summary, video, r"truncated or corrupt.*declares \d+ frames but only")


def test_truncated_tiff(tmp_path, beating, fake_segmenter):
    _, frames = beating
    tifffile.imwrite(tmp_path / "whole.tif", frames, metadata={"fps": 15.0},
                     photometric="minisblack")
    data = (tmp_path / "whole.tif").read_bytes()
    video = tmp_path / "cut.tif"
    video.write_bytes(data[: len(data) // 2])
    result, summary = analyze(tmp_path / "out", str(video))
    assert_failed(result, summary, video, r"cannot decode|not a readable TIFF")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("zero.avi", b"", r"empty file \(0 bytes\)"),
        ("notes.avi", b"this is a text file, not a video\n" * 40, r"not a readable video"),
    ],
)
def test_unreadable_file(tmp_path, beating, name, content, message):
    video = tmp_path / name
    video.write_bytes(content)
    masks = write_masks(tmp_path / "m.tif", beating[0])
    result, summary = analyze(tmp_path / "out", str(video), "--masks", str(masks))
    assert_failed(result, summary, video, message)


def test_single_frame_video(tmp_path, beating):
    masks, frames = beating
    video = write_avi(tmp_path / "one.avi", frames[:1])
    result, summary = analyze(tmp_path / "out", str(video), "--masks",
                              str(write_masks(tmp_path / "m.tif", masks[:1])))
    assert_failed(result, summary, video, r"only 1 frame\(s\); at least 3")


def test_checkpoint_that_is_not_a_checkpoint(tmp_path, beating):
    pytest.importorskip("torch")
    video = write_avi(tmp_path / "heart.avi", beating[1])
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint\n")
    from medaka_heart.run import jobs

    jobs._SEGMENTERS.clear()
    result, summary = analyze(tmp_path / "out", str(video), "--model", str(bogus))
    assert result.exit_code == 1
    assert summary is None
    assert result.output.count(f"{bogus}: not a model checkpoint") == 1, result.output


# ---------------------------------------------------------------------------------------------
# masks that do not fit


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("small", r"masks are 160x120 px but the video is 320x240"),
        ("short", r"80 masks for a video of 90 frames"),  # found before decoding
        # one short: within what a container may over-count, so it is the decoded count
        # that does not match
        ("one short", r"the mask count does not match the frames decoded from .*heart.avi"),
    ],
)
def test_mask_stack_of_the_wrong_size(tmp_path, beating, shape, message):
    masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    wrong = {"small": masks[:, ::2, ::2], "short": masks[:-10], "one short": masks[:-1]}[shape]
    mask_path = write_masks(tmp_path / "wrong_masks.tif", wrong)
    result, summary = analyze(tmp_path / "out", str(video), "--masks", str(mask_path))
    assert_failed(result, summary, mask_path, message)
    assert not (tmp_path / "out" / "heart").exists()


# ---------------------------------------------------------------------------------------------
# readable videos with unusual content: an honest 'ok' row


def test_constant_black_video_with_empty_masks(tmp_path, beating):
    masks, frames = beating
    video = write_avi(tmp_path / "black.avi", np.zeros_like(frames))
    empty = write_masks(tmp_path / "empty.tif", np.zeros_like(masks))
    result, summary = analyze(tmp_path / "out", str(video), "--masks", str(empty), plots=True)
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert row["n_beats"] == 0
    assert np.isnan(row["hr_bpm"])
    assert np.isnan(row["ef_pct"])
    assert np.isnan(row["edv_pl"])
    frames_csv = pd.read_csv(tmp_path / "out" / "black" / "frames.csv")
    assert len(frames_csv) == len(frames)
    assert frames_csv["area_um2"].isna().all()
    assert len(pd.read_csv(tmp_path / "out" / "black" / "beats.csv")) == 0


def test_constant_black_video_segmented(tmp_path, beating, fake_segmenter):
    video = write_avi(tmp_path / "black.avi", np.zeros_like(beating[1]))
    result, summary = analyze(tmp_path / "out", str(video))
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert row["n_beats"] == 0
    assert np.isnan(row["hr_bpm"])


def test_pure_noise_video(tmp_path, beating, fake_segmenter):
    noise = np.random.default_rng(3).integers(0, 256, beating[1].shape, dtype=np.uint8)
    video = write_avi(tmp_path / "noise.avi", noise)
    result, summary = analyze(tmp_path / "out", str(video))
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert row["n_frames"] == len(noise)
    beats = pd.read_csv(tmp_path / "out" / "noise" / "beats.csv")
    assert len(beats) == row["n_beats"]


def test_16bit_tiff_with_a_high_dynamic_range(tmp_path, law, beating, fake_segmenter):
    """Heart at 40000 on a background near 300, a few hot (65535) and dead (0) pixels."""
    masks, _ = beating
    rng = np.random.default_rng(5)
    frames = (rng.integers(200, 400, masks.shape) + 40000 * masks).astype(np.uint16)
    frames[:, :3, :3] = 65535
    frames[:, -3:, -3:] = 0
    video = tmp_path / "hdr.tif"
    tifffile.imwrite(video, frames, metadata={"fps": law.fps}, compression="zlib")
    result, summary = analyze(tmp_path / "out", str(video), "--pixel-size",
                              str(law.pixel_size_um), plots=True)
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert row["fps_source"] == "metadata"
    assert row["hr_bpm"] == pytest.approx(law.hr_bpm, rel=0.02)


def test_float32_tiff_with_nan(tmp_path, law, beating, fake_segmenter):
    """NaN patches in every frame and one frame all NaN: still the right heart rate."""
    masks, _ = beating
    frames = np.where(masks, np.float32(0.8), np.float32(0.1))
    frames[:, :20, :20] = np.nan
    frames[10] = np.nan
    video = tmp_path / "nan.tif"
    tifffile.imwrite(video, frames, metadata={"fps": law.fps})
    result, summary = analyze(tmp_path / "out", str(video), plots=True)
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert row["hr_bpm"] == pytest.approx(law.hr_bpm, rel=0.02)
    assert row["hr_bpm_intensity"] == pytest.approx(law.hr_bpm, rel=0.02)  # NaN-free thumbnails
    frames_csv = pd.read_csv(tmp_path / "out" / "nan" / "frames.csv")
    assert np.isnan(frames_csv.loc[10, "area_um2"])  # the all-NaN frame: no ventricle


def test_tiff_whose_metadata_claims_zero_fps(tmp_path, law, beating):
    masks, frames = beating
    video = tmp_path / "zero_fps.tif"
    tifffile.imwrite(video, frames, metadata={"fps": 0})
    mask_path = write_masks(tmp_path / "m.tif", masks)
    result, summary = analyze(tmp_path / "out", str(video), "--masks", str(mask_path))
    assert_failed(result, summary, video, r"frame rate.*--fps")
    result, summary = analyze(tmp_path / "out2", str(video), "--masks", str(mask_path),
                              "--fps", str(law.fps))  # as the message says: --fps rescues it
    assert result.exit_code == 0, result.output
    assert summary["fps_source"].iloc[0] == "user"
    assert summary["hr_bpm"].iloc[0] == pytest.approx(law.hr_bpm, rel=0.01)


# The CLI in a fresh process that reports its own peak RSS (VmHWM) at exit. Not ru_maxrss: a
# child's ru_maxrss starts from the RSS of its parent (here pytest) at fork.
PEAK_WRAPPER = """
import atexit, sys
atexit.register(lambda: sys.stderr.write(
    next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))))
from medaka_heart.cli import main
main(args=sys.argv[1:], prog_name="medaka-heart")
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_4000x3000_video_keeps_memory_bounded(tmp_path):
    """A few 12-Mpx frames: peak RSS of the whole CLI process (plots included) stays bounded.

    Without the chunk cap of `io.video.frames_per_chunk` it was 2.2 GB for these 4 frames.
    """
    from skimage.draw import ellipse

    n, h, w = 4, 3000, 4000
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        rr, cc = ellipse(h / 2, w / 2, 400 - 40 * i, 700, shape=(h, w))
        masks[i, rr, cc] = True
    video = write_avi(tmp_path / "big.avi", (60 + 100 * masks).astype(np.uint8))
    mask_path = write_masks(tmp_path / "big_masks.tif", masks)
    del masks
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", PEAK_WRAPPER, "analyze", str(video), "--masks", str(mask_path),
           "-o", str(out), "--no-progress", "--workers", "1", "--save-masks"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_S, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Traceback" not in output
    peak_mb = int(output.split("VmHWM:")[1].split()[0]) / 1024
    assert peak_mb < 1200, f"peak RSS {peak_mb:.0f} MB for 4 frames of 4000x3000"
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["status"] == "ok"
    assert row["n_frames"] == n
    with tifffile.TiffFile(out / "big" / "masks.tif") as tif:
        assert len(tif.pages) == n
        assert tif.pages[0].shape == (h, w)


# ---------------------------------------------------------------------------------------------
# batches


def test_batch_of_bad_inputs_all_failing_exits_non_zero(tmp_path, beating):
    masks, frames = beating
    (tmp_path / "zero.avi").write_bytes(b"")
    (tmp_path / "text.avi").write_text("not a video\n" * 40)
    one = write_avi(tmp_path / "one.avi", frames[:1])
    videos = [tmp_path / "zero.avi", tmp_path / "text.avi", one, tmp_path / "missing.avi"]
    mask_path = str(write_masks(tmp_path / "m.tif", masks))
    args = [str(v) for v in videos] + ["--masks", mask_path] * len(videos)
    result, summary = analyze(tmp_path / "out", *args)
    assert result.exit_code == 1
    assert "0/4 video(s) analysed" in result.output
    assert list(summary["status"]) == ["failed"] * 4
    for video, error in zip(videos, summary["error"], strict=True):
        assert video.name in error
        assert "\n" not in error


def test_bad_inputs_fail_alone_beside_a_good_one(tmp_path, law, beating):
    masks, frames = beating
    good = write_avi(tmp_path / "good.avi", frames)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    black = write_avi(tmp_path / "black.avi", np.zeros_like(frames))
    mask_path = write_masks(tmp_path / "m.tif", masks)
    empty = write_masks(tmp_path / "empty.tif", np.zeros_like(masks))
    small = write_masks(tmp_path / "small.tif", masks[:, ::2, ::2])
    twin = tmp_path / "twin.avi"  # a good video with masks of the wrong size
    twin.write_bytes(good.read_bytes())
    args = [str(cut), str(good), str(black), str(twin),
            "--masks", str(mask_path), "--masks", str(mask_path), "--masks", str(empty),
            "--masks", str(small)]
    result, summary = analyze(tmp_path / "out", *args)
    assert result.exit_code == 0, result.output
    assert "2/4 video(s) analysed" in result.output
    by_status = summary.groupby("status")["video"].apply(sorted).to_dict()
    assert len(by_status["ok"]) == 2
    assert len(by_status["failed"]) == 2
    assert set(pd.read_csv(tmp_path / "out" / "beats_all.csv")["video"]) <= set(by_status["ok"])
    assert (summary["n_beats"] > 0).sum() == 1  # the good video; black: 0 beats


def test_a_container_that_over_counts_a_few_frames_is_analysed(tmp_path, beating):
    """H.264 and other containers estimate their frame count; a few frames short is normal."""
    masks, frames = beating
    whole = write_avi(tmp_path / "whole.avi", frames).read_bytes()
    video = tmp_path / "short.avi"
    video.write_bytes(whole[: int(len(whole) * 0.985)])  # the index and the last frame or two
    declared = open_video(video).info.n_frames
    decoded = sum(len(c) for c in open_video(video).chunks(64))
    assert declared == len(frames)
    assert declared - 4 <= decoded < declared
    result, summary = analyze(tmp_path / "out", str(video), "--fps", "15", "--masks",
                              str(write_masks(tmp_path / "m.tif", masks[:decoded])))
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert (row["n_frames"], row["n_frames_declared"]) == (decoded, declared)


def test_decoding_far_short_of_the_declared_count_is_an_error():
    from medaka_heart.io.video import _check_shortfall

    _check_shortfall(Path("v.mp4"), 1943, 1931)  # the real consumer recording: analysed
    with pytest.raises(VideoError, match=r"v.mp4: truncated or corrupt.*1943.*1800.*5 % short"):
        _check_shortfall(Path("v.mp4"), 1943, 1800)
