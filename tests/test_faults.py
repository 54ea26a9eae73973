"""The faults a real lab hits, each as a user would trigger it (real files, real processes).

Together with test_bad_inputs.py (broken, missing and odd inputs), this is the fault
catalogue of the README's "What can go wrong" table.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest
from test_bad_inputs import analyze, write_avi, write_masks

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


def test_a_write_that_fails_half_way_names_the_final_file(tmp_path):
    target = tmp_path / "montage.png"

    def write_half():
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    kept = re.escape(os.strerror(errno.ENOSPC))  # the cause's errno text survives
    with pytest.raises(OSError, match=kept) as err:
        write_half()
    assert err.value.filename == str(target)  # not the hidden .tmp name
    assert list(tmp_path.iterdir()) == []


def test_describe_os_error_is_one_line_naming_the_file():
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "OUT/v/montage.png")
    assert atomic.describe_os_error(exc) == "no space left on device: OUT/v/montage.png"


# ---------------------------------------------------------------------------------------------
# time


def _zero_rate_avi(path: Path, frames) -> Path:
    """An AVI whose headers state no frame rate (stream dwRate 0, main header 0 us/frame)."""
    import struct

    data = bytearray(write_avi(path, frames).read_bytes())
    strh = data.find(b"strh")
    data[strh + 32 : strh + 36] = struct.pack("<I", 0)
    avih = data.find(b"avih")
    data[avih + 8 : avih + 12] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    return path


def test_an_avi_that_states_no_frame_rate_is_not_read_at_25_fps(tmp_path, beating):
    import cv2

    masks, frames = beating
    video = _zero_rate_avi(tmp_path / "norate.avi", frames)
    assert cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) == 25.0  # OpenCV's stand-in
    mask_file = str(write_masks(tmp_path / "m.tif", masks))
    result, summary = analyze(tmp_path / "out", str(video), "--masks", mask_file)
    assert result.exit_code == 1
    assert "norate.avi: frame rate unknown" in summary["error"].iloc[0]
    assert "pass --fps" in summary["error"].iloc[0]
    result, summary = analyze(tmp_path / "out2", str(video), "--masks", mask_file, "--fps", "15")
    assert result.exit_code == 0
    assert (summary["fps"].iloc[0], summary["fps_source"].iloc[0]) == (15.0, "user")


def _frame_folder(folder: Path, frames, numbers) -> Path:
    import cv2

    folder.mkdir()
    for number, frame in zip(numbers, frames, strict=False):
        cv2.imwrite(str(folder / f"frame_{number:04d}.png"), frame)
    return folder


def test_frames_missing_from_the_numbering_keep_their_times(tmp_path, beating):
    """Every 25th frame is missing: the rate must not rise 4 % (frames squeezed together)."""
    masks, frames = beating
    keep = [i for i in range(len(frames)) if i % 25 != 12]
    folder = _frame_folder(tmp_path / "frames", frames[keep], keep)
    truth_out, gapped_out = tmp_path / "whole", tmp_path / "gapped"
    whole = _frame_folder(tmp_path / "all", frames, range(len(frames)))
    _, truth = analyze(truth_out, str(whole), "--fps", "15", "--masks",
                       str(write_masks(tmp_path / "m.tif", masks)))
    mask_folder = tmp_path / "masks"
    mask_folder.mkdir()
    import cv2

    for i in keep:
        cv2.imwrite(str(mask_folder / f"mask_{i:04d}.png"), masks[i].astype("uint8") * 255)
    result, summary = analyze(gapped_out, str(folder), "--fps", "15", "--masks",
                              str(mask_folder))
    assert result.exit_code == 0, result.output
    row = summary.iloc[0]
    assert row["n_frames"] == len(frames)
    assert row["qc_missing_frames"] == len(frames) - len(keep)
    assert "frame_gaps" in row["qc_flags"]
    assert not row["qc_pass"]
    assert row["hr_bpm"] == pytest.approx(truth["hr_bpm"].iloc[0], rel=0.01)


def test_long_frame_gaps_are_an_error(tmp_path, beating):
    _, frames = beating
    keep = [i for i in range(len(frames)) if not 20 <= i < 30]
    folder = _frame_folder(tmp_path / "frames", frames[keep], keep)
    result, summary = analyze(tmp_path / "out", str(folder), "--fps", "15")
    assert result.exit_code == 1
    assert "10 of 90 numbered frames are missing" in summary["error"].iloc[0]


# ---------------------------------------------------------------------------------------------
# runs and processes


LOCK_SCRIPT = """
import sys, time
from pathlib import Path
from medaka_heart.batch import OutputError, output_lock
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    with output_lock(Path(sys.argv[1])):
        print("got", flush=True)
        time.sleep(1.0)
except OutputError as exc:
    print("refused", exc, flush=True)
"""


def test_two_runs_released_together_never_both_get_the_lock(tmp_path):
    import subprocess
    import sys
    import time

    script = tmp_path / "lock.py"
    script.write_text(LOCK_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    for _ in range(5):
        start = time.time() + 1.5
        runs = [subprocess.Popen([sys.executable, str(script), str(out), str(start)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
        said = sorted(p.communicate(timeout=30)[0].split()[0] for p in runs)
        assert said == ["got", "refused"]


def test_a_lock_held_elsewhere_names_its_owner(tmp_path):
    from medaka_heart.batch import OutputError, output_lock

    with output_lock(tmp_path):
        owner = (tmp_path / ".medaka-heart.owner").read_text()
        assert f"pid {os.getpid()}" in owner
        # a second lock in the same process is another open file: refused like another run
        with pytest.raises(OutputError, match=r"another run \(host .*, pid \d+\) is writing"):
            with output_lock(tmp_path):
                pass
    with output_lock(tmp_path):  # released: taken again
        pass


def test_a_config_of_the_wrong_type_fails_once_before_any_video(tmp_path, beating):
    _, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    config = tmp_path / "c.toml"
    config.write_text('[qc]\nmin_beats = "3"\n')
    result, summary = analyze(tmp_path / "out", str(video), "--config", str(config))
    assert result.exit_code == 1
    assert summary is None
    assert result.output.strip() == (f"Error: {config}: [qc] min_beats = '3': expected a "
                                     "whole number")
    config.write_text('[cycles]\nhr_min_bpm = "sixty"\n')
    result, _ = analyze(tmp_path / "out", str(video), "--config", str(config))
    assert "[cycles] hr_min_bpm = 'sixty': expected a number" in result.output


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc; zombies are not alive)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        zombie = fields.get("State", "").startswith("Z")
        if fields.get("PPid", "").strip() == str(pid) and not zombie:
            out.append(int(status.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_workers_die_with_a_killed_run(tmp_path, beating):
    """kill -9 of `analyze --workers 2`: no worker lives on 10 s later to write into OUT."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    masks, frames = beating
    videos, given = [], []
    for i in range(4):  # long enough that the workers are busy when the run is killed
        videos.append(str(write_avi(tmp_path / f"v{i}.avi", np.concatenate([frames] * 8))))
        given += ["--masks", str(write_masks(tmp_path / f"m{i}.tif",
                                             np.concatenate([masks] * 8)))]
    run = subprocess.Popen([sys.executable, "-m", "medaka_heart", "analyze", *videos,
                            *given, "-o", str(tmp_path / "out"), "--workers", "2",
                            "--no-progress"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = [p for p in _children(run.pid)
                   if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
    assert len(workers) >= 2, "the workers never started"
    time.sleep(1.0)
    every = _children(run.pid)  # the workers and multiprocessing's resource tracker
    every += [p for w in every for p in _children(w)]
    run.send_signal(signal.SIGKILL)
    run.wait()
    time.sleep(10)
    assert [p for p in every if _alive(p)] == []


# ---------------------------------------------------------------------------------------------
# options: wrong once, up front


@pytest.mark.parametrize(("args", "message"), [
    (["--fps", "0"], "Invalid value for '--fps': 0.0 is not in the range 0<x<=10000"),
    (["--fps", "-3"], "Invalid value for '--fps'"),
    (["--pixel-size", "0"], "Invalid value for '--pixel-size'"),
    (["--model", "nowhere"], "nowhere: --model not found"),
    (["--config", "nowhere.toml"], "'nowhere.toml' does not exist"),
])
def test_bad_options_are_said_once_before_any_video(tmp_path, beating, args, message):
    _, frames = beating
    videos = [str(write_avi(tmp_path / f"v{i}.avi", frames)) for i in range(3)]
    result, summary = analyze(tmp_path / "out", *videos, *args)
    assert result.exit_code != 0
    assert summary is None  # no video was read, no row written
    assert result.output.count(message) == 1, result.output


def test_a_random_file_as_model_is_not_a_model_checkpoint(tmp_path, beating):
    _, frames = beating
    video = write_avi(tmp_path / "v.avi", frames)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    result, summary = analyze(tmp_path / "out", str(video), "--model", str(junk))
    assert result.exit_code == 1
    assert summary is None
    assert "junk.pt: not a model checkpoint" in result.output
    assert "pickled" not in result.output


# ---------------------------------------------------------------------------------------------
# silent defaults


def test_the_default_pixel_size_is_said(tmp_path, beating, caplog):
    masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    mask_file = str(write_masks(tmp_path / "m.tif", masks))
    _, summary = analyze(tmp_path / "out", str(video), "--masks", mask_file)
    row = summary.iloc[0]
    assert row["pixel_size_source"] == "default"
    assert "pixel_size_default" in row["qc_findings"]
    assert "no pixel size given" in caplog.text
    _, summary = analyze(tmp_path / "out2", str(video), "--masks", mask_file,
                         "--pixel-size", "1.2")
    assert "pixel_size_default" not in str(summary.iloc[0]["qc_findings"])


def test_evaluate_warns_when_the_pixel_sizes_differ(tmp_path, caplog):
    import json

    from medaka_heart.io.truth import VideoSources, warn_pixel_size

    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"pixel_size_um": 1.3}))
    truth = VideoSources("v", meta=meta)
    assert warn_pixel_size(VideoSources("v", pixel_size_um=1.115), truth)
    assert "analysed at 1.115 um/px but the truth's meta.json says 1.3 um/px" in caplog.text
    assert not warn_pixel_size(VideoSources("v", pixel_size_um=1.3), truth)


# ---------------------------------------------------------------------------------------------
# what the run says at the end


def test_an_empty_folder_among_inputs_gets_a_failed_row(tmp_path, beating):
    _masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    empty = tmp_path / "empty"
    empty.mkdir()
    result, summary = analyze(tmp_path / "out", str(empty), str(video), "--fps", "15")
    assert list(summary["status"]) == ["failed", "ok"]
    assert "empty: folder holds no frame images" in summary.loc[0, "error"]
    assert result.exit_code == 0  # one video was analysed
    assert "1/2 video(s) analysed, 1 failed, " in result.output
    assert "\nfailed: empty\n" in result.output + "\n"
    strict, _ = analyze(tmp_path / "out", str(empty), str(video), "--fps", "15", "--strict")
    assert strict.exit_code == 1  # --strict: every video must succeed
    assert "(1 reused from an earlier run)" in strict.output


def test_the_last_line_counts_the_flagged_videos(tmp_path, beating):
    masks, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    empty_masks = write_masks(tmp_path / "m.tif", masks & False)
    result, summary = analyze(tmp_path / "out", str(video), "--masks", str(empty_masks))
    assert not summary.loc[0, "qc_pass"]
    assert "1/1 video(s) analysed, 0 failed, 1 flagged by QC" in result.output


def test_staging_left_by_a_failed_job_is_removed_at_the_end(tmp_path, beating):
    """A job that dies half-way (here: its segmenter factory leaves a staging folder and
    fails) leaves nothing hidden behind once the run is over."""
    from medaka_heart.batch import LOCK_FILE, run_batch
    from medaka_heart.config import Config
    from medaka_heart.options import BatchOptions, VideoOptions

    _, frames = beating
    video = write_avi(tmp_path / "heart.avi", frames)
    out = tmp_path / "out"

    def dying_factory(segment, preprocess):
        (out / ".heart.abc123.partial").mkdir()
        raise MemoryError("out of memory")

    summary = run_batch([video], ["heart"], out, Config(), VideoOptions(fps=15.0),
                        BatchOptions(workers=1, show_progress=False),
                        segmenter_factory=dying_factory)
    assert list(summary["status"]) == ["failed"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [LOCK_FILE]


DECODE_SCRIPT = """
import sys
if sys.argv[2] == "medaka_heart":
    from medaka_heart.io.video import open_video
    for _ in open_video(sys.argv[1]).chunks(64):
        pass
else:
    import cv2
    cap = cv2.VideoCapture(sys.argv[1])
    while cap.read()[0]:
        pass
"""


def test_ffmpeg_messages_stay_off_the_terminal(tmp_path):
    """A damaged MJPEG stream makes FFmpeg print '[mjpeg @ 0x...] error ...' lines."""
    import subprocess
    import sys

    import numpy as np

    rng = np.random.default_rng(0)
    video = write_avi(tmp_path / "damaged.avi",
                      rng.integers(0, 255, (40, 240, 320), dtype=np.uint8))
    data = bytearray(video.read_bytes())
    for k in range(20_000, len(data) - 20_000, 50_000):
        data[k : k + 200] = bytes(200)
    video.write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}

    def stderr(how: str) -> str:
        return subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(video), how], env=env,
                              capture_output=True, text=True, timeout=60).stderr

    assert "[mjpeg @" in stderr("cv2")  # the lines are there to be kept off
    assert "[mjpeg @" not in stderr("medaka_heart")


def test_an_annotation_folder_of_two_runs_is_read_frame_by_frame(tmp_path, beating):
    """HeartSeg-style mask folders hold several runs (0000-0020, 0207-0227): evaluate reads
    them in order; as a video, whose numbering is time, they are refused."""
    import cv2

    from medaka_heart.io.truth import mask_shape
    from medaka_heart.io.video import VideoError, open_video

    masks, _ = beating
    folder = tmp_path / "v_mask"
    folder.mkdir()
    for k, number in enumerate([*range(21), *range(207, 228)]):
        cv2.imwrite(str(folder / f"{number:04d}_mask.png"), masks[k].astype("uint8") * 255)
    assert mask_shape(folder)[0] == 42
    with pytest.raises(VideoError, match=r"186 of 228 numbered frames are missing"):
        open_video(folder)
