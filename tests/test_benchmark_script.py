"""scripts/benchmark.py, speed part: fresh `analyze` runs measured, plate folders, the table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from medaka_heart.io.discover import discover_sources

LINUX_PROC = Path("/proc/self/status").is_file()


@pytest.fixture
def bench(load_script):
    return load_script("benchmark")


def write_law_tiff(folder: Path, law, n_frames: int) -> tuple[Path, Path]:
    """The ellipse law as a TIFF video (fps and pixel size in its metadata) and its masks."""
    masks = law.masks(n_frames)
    video, mask_file = folder / "law.tif", folder / "law_masks.tif"
    tifffile.imwrite(video, (60 + 150 * masks).astype(np.uint8),
                     metadata={"fps": law.fps, "pixel_size_um": law.pixel_size_um})
    tifffile.imwrite(mask_file, masks.astype(np.uint8) * 255)
    return video, mask_file


def test_a_fresh_analyze_is_timed_and_says_what_it_used(tmp_path, bench, law):
    video, masks = write_law_tiff(tmp_path, law, 45)  # 3 s at 15 frames/s
    out = tmp_path / "out"
    run = bench.cli_analyze([video], 45, out, ["--masks", str(masks), "--no-plots"], 1)
    assert run["exit_code"] == 0, run.get("log_tail")
    assert run["n_failed"] == 0
    assert run["frames"] == 45
    assert run["fps"] == pytest.approx(45 / run["wall_s"], rel=0.01)
    assert run["peak_rss_mb"] > 20  # a Python process with numpy and the package
    assert run["runtime"] is None  # measured from masks: no model ran
    assert run["fps_source"] == "metadata"
    assert run["pixel_size_source"] == "metadata"
    assert run["command"].startswith(f"medaka-heart analyze {video} -o {out}")
    assert not out.exists()  # removed after reading provenance.json and summary.csv
    assert (tmp_path / "out.log").is_file()


def test_a_failed_analyze_is_reported_with_its_log(tmp_path, bench):
    run = bench.run_cli(["analyze", str(tmp_path / "missing.avi"), "-o", str(tmp_path / "o")],
                        tmp_path / "o.log")
    assert run["exit_code"] != 0
    assert run["log_tail"]


def test_the_plate_folder_holds_only_the_chosen_files(tmp_path, bench):
    data = tmp_path / "set"
    data.mkdir()
    chosen = []
    for i in range(2):
        tif = data / f"hts_{i:03d}.tif"
        tifffile.imwrite(tif, np.zeros((3, 8, 8), np.uint16), photometric="minisblack",
                         metadata={"fps": 20.0})
        (data / f"hts_{i:03d}.avi").write_bytes(b"not analysed")
        (data / f"hts_{i:03d}.truth").mkdir()
        chosen.append({"path": tif})
    plate = bench.plate_folder(chosen, tmp_path / "plate")
    assert sorted(p.name for p in plate.iterdir()) == ["hts_000.tif", "hts_001.tif"]
    sources = discover_sources([str(plate)])
    assert [s.path for s in sources] == [v["path"].resolve() for v in chosen]


@pytest.mark.skipif(not LINUX_PROC, reason="reads /proc")
def test_child_processes_and_their_memory_are_seen(bench):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in bench._descendants(os.getpid())
        assert bench._status_kb(child.pid, "VmRSS:") > 0
    finally:
        child.kill()
        child.wait()
    assert bench._status_kb(child.pid, "VmRSS:") == 0


def speed_report(model: bool) -> dict:
    """A speed section as `speed()` writes it, with or without a model."""
    def row(stage, frames, fps, how="fresh analyze", ratio=0.1):
        return {"stage": stage, "how": how, "frames": frames, "fps": fps, "wall_s": 1.0,
                "peak_rss_mb": 500.0, "ratio_to_decode": ratio}

    run = {"exit_code": 0, "n_failed": 0, "fps": 120.0, "peak_rss_mb": 600.0,
           "runtime": "onnx", "device": "cpu", "threads": 2}
    skipped = {"skipped": "no model (see model.error)"}
    plate = {"n_videos": 24, "duration_s": 10.0, "workers": 2, "input": [".tif"],
             "decode_fps": 900.0}
    if model:
        plate.update(run, fps=90.0, worker_peak_rss_mb=1100.0, threads=1,
                     plate_96_extrapolated_s=400.0, per_video_mean_s=4.2,
                     fps_source="metadata", pixel_size_source="metadata",
                     no_self_adapt={"fps": 140.0, "wall_s": 32.0, "ratio_to_decode": 0.15,
                                    "plate_96_extrapolated_s": 128.0})
    else:
        plate.update(skipped)
    stages = [row("decode, 30 s video", 783, 1000.0, "in-process", 1.0),
              row("end to end, figures, truth masks (--masks)", 783, 200.0)]
    if model:
        stages.insert(1, row("segment, first 320 frames, CPU", 320, 150.0, "in-process"))
        stages.insert(2, row("end to end, figures", 783, 120.0))
    return {"video": "typical_900401_000", "width": 640, "height": 480, "video_fps": 26.1,
            "repeats": 1, "cli_repeats": 1, "threads": 2, "cpu_count": 2, "usable_cores": 2,
            "preprocess_size": 128, "cuda": None, "stages": stages,
            "end_to_end": run if model else skipped,
            "end_to_end_no_plots": run if model else skipped,
            "end_to_end_no_self_adapt": run if model else skipped,
            "end_to_end_masks": {**run, "runtime": None, "device": None, "fps": 200.0},
            "plate": plate,
            "memory_length": {"mode": "model" if model else "masks", "short_s": 30.0,
                              "long_s": 60.0, "short_peak_rss_mb": 600.0,
                              "long_peak_rss_mb": 610.0, "ratio": 1.017,
                              "long": {"exit_code": 0, "n_failed": 0}},
            "runtime": "onnx" if model else None, "device": "cpu" if model else None,
            "model_threads": 2 if model else None}


def test_the_speed_table_has_every_row_and_the_targets(bench):
    text = "\n".join(bench.speed_table(speed_report(model=True)))
    assert "| segment, first 320 frames, CPU | in-process | 320 | 150.0 | 1.00 | 500 |" in text
    assert "runtime onnx, device cpu, threads 2" in text
    assert "largest worker 1100 MB" in text
    assert "end to end with figures >= 100 frames/s: 120 (met)" in text
    assert "plate >= 130 frames/s: 90 (NOT met)" in text
    assert "plate with --no-self-adapt 140.0 frames/s (a 96-well plate: 128 s)" in text
    assert "<= 1024 MB: 1100 (NOT met)" in text  # the largest worker's peak
    assert "FAILED" not in text


def test_the_speed_table_without_a_model_says_what_was_skipped(bench):
    text = "\n".join(bench.speed_table(speed_report(model=False)))
    assert ("(skipped, no model: end_to_end, end_to_end_no_plots, end_to_end_no_self_adapt, "
            "plate)") in text
    assert "runtime None" in text
    assert "end to end with figures >= 100 frames/s: n/a" in text


def test_the_old_keys_follow_the_device_the_cli_used(bench):
    report = speed_report(model=True)
    cpu = bench._legacy_keys(report, report["stages"])
    assert cpu["decode_fps"] == 1000.0
    assert cpu["segment_fps"] == 150.0
    assert cpu["end_to_end_fps"] == 120.0
    report.update(device="cuda:0", cuda={"device_name": "GPU"})
    cpu = bench._legacy_keys(report, report["stages"])
    assert "end_to_end_fps" not in cpu
    assert report["cuda"]["end_to_end_fps"] == 120.0
