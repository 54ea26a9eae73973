"""`medaka-heart analyze --masks` on real files: exact results, isolated failures, clean errors."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

from medaka_heart.batch import LOCK_FILE
from medaka_heart.cli import main
from medaka_heart.schema import BEAT_COLUMNS, FRAME_COLUMNS, RHYTHM_BEAT_COLUMNS, SUMMARY_COLUMNS


@pytest.fixture
def law_video(tmp_path, law):
    """An AVI of the ellipse law (the mask painted grey on noise) and its LZW mask stack."""
    n = int(8 * law.fps)
    masks = law.masks(n)
    rng = np.random.default_rng(1)
    video = tmp_path / "heart.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), law.fps,
                             (law.width, law.height))
    for m in masks:
        img = rng.integers(0, 60, m.shape, dtype=np.uint8) + 150 * m.astype(np.uint8)
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()
    mask_path = tmp_path / "heart_masks.tif"
    rgb = np.repeat(masks[..., None].astype(np.uint8) * 255, 3, axis=-1)
    tifffile.imwrite(mask_path, rgb, compression="lzw", photometric="rgb")
    return video, mask_path, masks


def test_analyze_with_masks_writes_the_contract(tmp_path, law, law_video):
    video, mask_path, masks = law_video
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["analyze", str(video), "--masks", str(mask_path), "-o",
                                       str(out), "--pixel-size", str(law.pixel_size_um),
                                       "--save-masks", "--no-progress"])
    assert result.exit_code == 0, result.output
    frames = pd.read_csv(out / "heart" / "frames.csv")
    beats = pd.read_csv(out / "heart" / "beats.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert set(FRAME_COLUMNS) <= set(frames.columns)
    assert list(beats.columns) == [*BEAT_COLUMNS, *RHYTHM_BEAT_COLUMNS]
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    row = summary.iloc[0]
    assert row["status"] == "ok"
    assert row["fps"] == pytest.approx(law.fps)
    assert row["fps_source"] == "container"
    assert row["pixel_size_source"] == "user"
    assert row["hr_bpm"] == pytest.approx(law.hr_bpm, rel=0.005)
    assert row["fs_minor_pct"] == pytest.approx(100 * law.fb, rel=0.01)
    assert row["hr_bpm_intensity"] == pytest.approx(law.hr_bpm, rel=0.02)  # model-free check
    assert len(frames) == len(masks)
    np.testing.assert_array_equal(tifffile.imread(out / "heart" / "masks.tif") > 0, masks)
    assert (out / "heart" / "provenance.json").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name != LOCK_FILE]


def test_bad_inputs_fail_alone(tmp_path, law, law_video):
    video, mask_path, _ = law_video
    (tmp_path / "notes.avi").write_text("not a video")
    wrong = tmp_path / "wrong_size.tif"
    tifffile.imwrite(wrong, np.zeros((5, 10, 10), np.uint8))
    (tmp_path / "sub").mkdir()
    twin = tmp_path / "sub" / "heart.avi"  # same stem, other folder: must not overwrite
    twin.write_bytes(video.read_bytes())
    out = tmp_path / "out"
    args = ["analyze", str(video), str(tmp_path / "notes.avi"), str(tmp_path / "missing.avi"),
            str(twin), "-o", str(out), "--masks", str(mask_path), "--masks", str(mask_path),
            "--masks", str(mask_path), "--masks", str(wrong), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv").set_index("video")
    assert summary.loc[f"{tmp_path.name}_heart", "status"] == "ok"
    assert summary.loc["notes", "status"] == "failed"
    assert "notes.avi" in summary.loc["notes", "error"]
    assert "no such file" in summary.loc["missing", "error"]
    assert "masks are 10x10 px" in summary.loc["sub_heart", "error"]
    assert "Traceback" not in result.output


def test_all_inputs_failing_exits_non_zero(tmp_path):
    (tmp_path / "a.avi").write_bytes(b"")
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "a.avi"), "-o",
                                       str(tmp_path / "out"), "--masks", str(tmp_path / "a.avi")])
    assert result.exit_code == 1
    assert "0/1 video(s) analysed" in result.output


def test_unknown_fps_is_a_clear_error(tmp_path, law):
    folder = tmp_path / "frames"
    folder.mkdir()
    masks = law.masks(6)
    for i, m in enumerate(masks):
        cv2.imwrite(str(folder / f"f{i}.png"), m.astype(np.uint8) * 255)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["analyze", str(folder), "-o", str(out), "--masks",
                                       str(folder), "--no-progress"])
    assert result.exit_code == 1
    error = pd.read_csv(out / "summary.csv")["error"].iloc[0]
    assert "frame rate unknown" in error
    assert "--fps" in error
    ok = CliRunner().invoke(main, ["analyze", str(folder), "-o", str(out), "--masks", str(folder),
                                   "--fps", "15", "--no-progress"])
    assert ok.exit_code == 0, ok.output


def test_module_entry_point_help_is_fast_and_lists_commands():
    run = subprocess.run([sys.executable, "-m", "medaka_heart", "--help"], capture_output=True,
                         text=True, check=True)
    assert "analyze" in run.stdout  # (torch and cv2 stay unimported: checked in a fresh process)
    probe = subprocess.run([sys.executable, "-c", "import sys, medaka_heart.cli; "
                            "print('torch' in sys.modules, 'cv2' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["False", "False"]


def test_no_default_model_is_one_clear_error_before_any_video(tmp_path, law_video, monkeypatch):
    import medaka_heart.runtime as runtime

    monkeypatch.setattr(runtime, "DEFAULT_MODEL", tmp_path / "no_weights_here")
    video, _, _ = law_video
    result = CliRunner().invoke(main, ["analyze", str(video), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no default segmentation model" in result.output
    assert "--model" in result.output
    assert not (tmp_path / "out" / "heart").exists()


@pytest.mark.slow
def test_plain_video_with_no_other_input_uses_the_shipped_model(tmp_path):
    """`analyze VIDEO` alone: the shipped weights segment a sample phantom, the rate is right."""
    import json

    from medaka_heart.model.folder import model_hash
    from medaka_heart.segment import default_model_path

    sample = Path(__file__).parents[1] / "sample_data" / "typical_s2024_000.avi"
    truth = json.loads((sample.with_suffix(".truth") / "meta.json").read_text())
    result = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / sample.stem
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["model"]["model_sha256"] == model_hash(default_model_path())
    summary = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    assert summary["hr_bpm"] == pytest.approx(truth["params"]["hr_bpm"], rel=0.05)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_runtime_option_picks_what_runs_the_network_with_the_same_numbers(tmp_path, runtime):
    import json

    sample = Path(__file__).parents[1] / "sample_data" / "typical_s2024_000.avi"
    runs = {}
    for name in (runtime, "auto"):
        out = tmp_path / name
        result = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(out), "--no-plots",
                                           "--workers", "1", "--runtime", name, "--no-int8"])
        assert result.exit_code == 0, result.output
        provenance = json.loads((out / sample.stem / "provenance.json").read_text())
        runs[name] = (provenance["model"]["runtime"], pd.read_csv(out / "summary.csv").iloc[0])
        assert provenance["model"]["int8"] is False
    assert runs[runtime][0] == runtime
    assert runs["auto"][0] != "torch"  # the shipped model.onnx is checked for each engine
    for key in ("hr_bpm", "ef_pct", "edv_pl"):
        assert runs[runtime][1][key] == pytest.approx(runs["auto"][1][key], rel=1e-4)


def test_int8_runs_where_asked_for_and_close_to_float(tmp_path):
    import json

    pytest.importorskip("openvino")
    sample = Path(__file__).parents[1] / "sample_data" / "typical_s2024_000.avi"
    runs = {}
    for flags in (["--int8"], []):  # float32 by default
        out = tmp_path / ("int8" if flags else "default")
        result = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(out), "--no-plots",
                                           "--workers", "1", "--runtime", "openvino",
                                           "--save-masks", *flags])
        assert result.exit_code == 0, result.output
        provenance = json.loads((out / sample.stem / "provenance.json").read_text())
        assert provenance["model"]["int8"] is bool(flags)
        runs[bool(flags)] = tifffile.imread(out / sample.stem / "masks.tif") > 0
    a, b = runs[True], runs[False]
    assert not np.array_equal(a, b)  # the int8 network ran
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.99  # the shipped file's own check


def test_every_onnx_engine_is_a_runtime_to_choose():
    from medaka_heart.config import RUNTIMES
    from medaka_heart.runtime_onnx import ENGINES

    assert set(ENGINES) <= set(RUNTIMES)


def test_self_adapt_teaches_the_first_passs_largest_mask_and_says_so(tmp_path):
    import json

    from medaka_heart.model.self_adapt import pseudo_frame

    sample = Path(__file__).parents[1] / "sample_data" / "typical_s2024_000.avi"
    config = tmp_path / "steps.toml"
    config.write_text("[segment]\nself_adapt_steps = 5\n")
    runs = {}
    for flags in (["--config", str(config)], ["--no-self-adapt"]):  # the default: adapting
        adapting = "--no-self-adapt" not in flags
        out = tmp_path / ("adapted" if adapting else "alone")
        result = CliRunner().invoke(main, ["analyze", str(sample), "-o", str(out), "--no-plots",
                                           "--workers", "1", "--save-masks", "--no-progress",
                                           *flags])
        assert result.exit_code == 0, result.output
        provenance = json.loads((out / sample.stem / "provenance.json").read_text())
        runs[adapting] = (tifffile.imread(out / sample.stem / "masks.tif") > 0,
                             provenance["model"].get("self_adaptation"))
    (adapted, how), (plain, none) = runs[True], runs[False]
    assert none is None
    areas = plain.sum(axis=(1, 2))
    assert how["steps"] == 5
    assert how["frame"] == pseudo_frame(areas)  # the first pass is the plain segmentation
    assert how["area_px"] == areas[how["frame"]]
    assert how["used"] is True  # five steps reshape the masks, not destroy them
    assert how["agreement"] >= 0.75
    assert how["trace"] >= 0.8
    assert not np.array_equal(adapted, plain)  # the adapted fine pass segmented again
