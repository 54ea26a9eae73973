"""`medaka-heart evaluate` on real PRED / TRUTH folders written in tmp_path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

from medaka_heart.cli.evaluate import evaluate
from medaka_heart.io.truth import find_pred_videos, find_truth_videos

FPS = 20.0
N_FRAMES = 48
H, W = 24, 32
PERIOD_S = 0.8
ROWS = (6, 16)  # ventricle rectangle: rows 6-15 (10 rows), cols 8 .. 8 + width


def widths() -> np.ndarray:
    """Rectangle width per frame: a triangle wave between 8 and 16 px, period 16 frames."""
    phase = (np.arange(N_FRAMES) % 16) / 16
    return np.round(8 + 16 * np.abs(phase - 0.5)).astype(int)


def masks(shift_rows: int = 0) -> np.ndarray:
    out = np.zeros((N_FRAMES, H, W), np.uint8)
    for t, w in enumerate(widths()):
        out[t, ROWS[0] + shift_rows : ROWS[1] + shift_rows, 8 : 8 + w] = 255
    return out


def beats(frame_shift: int = 0) -> pd.DataFrame:
    ed_t = 0.0 + PERIOD_S * np.arange(3)
    es_t = ed_t + 0.4
    rr = np.append(np.diff(ed_t), np.nan)
    return pd.DataFrame({
        "beat": np.arange(3),
        "ed_frame": np.round(ed_t * FPS).astype(int) + frame_shift,
        "es_frame": np.round(es_t * FPS).astype(int) + frame_shift,
        "ed_time_s": ed_t + frame_shift / FPS,
        "es_time_s": es_t + frame_shift / FPS,
        "rr_s": rr,
        "hr_bpm": 60 / rr,
        "edv_pl": [2.0, 2.1, 2.2],
        "esv_pl": [1.0, 1.0, 1.1],
        "sv_pl": [1.0, 1.1, 1.1],
        "ef_pct": [50.0, 52.4, 50.0],
        "fs_minor_pct": 20.0,
        "fs_major_pct": 10.0,
        "fac_pct": 30.0,
    })


def frames_table() -> pd.DataFrame:
    f = np.arange(N_FRAMES)
    return pd.DataFrame({"frame": f, "time_s": f / FPS, "area_um2": 10.0 * widths()})


def write_pred(root, stem="fish1", *, frame_shift=0, shift_rows=0, with_masks=True,
               qc_pass=None):
    (root / stem).mkdir(parents=True)
    frames_table().to_csv(root / stem / "frames.csv", index=False)
    beats(frame_shift).to_csv(root / stem / "beats.csv", index=False)
    if with_masks:
        tifffile.imwrite(root / stem / "masks.tif", masks(shift_rows), compression="zlib")
    summary = root / "summary.csv"
    row = pd.DataFrame({"video": [stem], "status": ["ok"], "fps": [FPS]})
    if qc_pass is not None:
        row["qc_pass"] = qc_pass
    if summary.exists():
        row = pd.concat([pd.read_csv(summary), row])
    row.to_csv(summary, index=False)
    return root


def write_phantom_truth(root, stem="fish1"):
    """Phantom layout: TRUTH/<stem>.avi beside TRUTH/<stem>.truth/."""
    folder = root / f"{stem}.truth"
    folder.mkdir(parents=True)
    (root / f"{stem}.avi").write_bytes(b"not read by evaluate")
    tifffile.imwrite(folder / "masks.tif", masks(), compression="zlib")
    frames_table().to_csv(folder / "frames.csv", index=False)
    beats().to_csv(folder / "beats.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"fps": FPS}))
    return root


def write_heartseg_truth(root, stem="fish1"):
    """HeartSeg layout: TRUTH/<stem>_mask/NNNN_mask.tif, RGB 0/255 LZW, no tables."""
    folder = root / f"{stem}_mask"
    folder.mkdir(parents=True)
    for t, m in enumerate(masks()):
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = m  # one channel is enough: any nonzero pixel is the ventricle
        tifffile.imwrite(folder / f"{t + 1:04d}_mask.tif", rgb, photometric="rgb",
                         compression="lzw")
    return root


def run(*args):
    result = CliRunner().invoke(evaluate, [str(a) for a in args])
    return result, result.output


def metrics(report):
    return json.loads((report / "metrics.json").read_text())


def test_identical_pred_and_truth_scores_perfectly(tmp_path):
    pred = write_pred(tmp_path / "pred")
    report = tmp_path / "report"
    result, out = run(pred, pred, "-o", report, "--fail-under",
                      "dice_mean=1,edes_detection_rate=1", "--fail-over", "edes_frame_error_max=0")
    assert result.exit_code == 0, out
    m = metrics(report)
    assert m["dice_mean"] == 1.0
    assert m["dice_p05"] == 1.0
    assert m["edes_detection_rate"] == 1.0
    assert m["ed_frame_error_mean"] == 0.0
    assert m["edes_frame_error_max"] == 0.0
    assert m["n_videos"] == 1
    assert m["n_beats_true"] == 3
    assert m["n_false_events"] == 0
    assert m["n_frames_dice"] == N_FRAMES
    assert m["hr_rel_err_pct_median"] == 0.0
    assert m["ef_abs_err_median"] == 0.0
    per_video = pd.read_csv(report / "evaluation.csv")
    assert list(per_video["video"]) == ["fish1"]
    assert per_video.loc[0, "dice_mean"] == 1.0
    table = pd.read_csv(report / "beats_vs_truth.csv")
    assert len(table) == 3
    assert {"video", "beat", "ed_frame_pred", "ed_frame_true", "ef_pct_pred", "ef_pct_true",
            "edv_pl_pred", "edv_pl_true", "fs_minor_pct_pred", "hr_bpm_true"} <= set(table.columns)
    assert len(pd.read_csv(report / "dice.csv")) == N_FRAMES
    for row in ("mean", "std", "median", "q1", "q3"):
        assert row in out
    assert "50.0 (50.0)" in out  # the pred (truth) table


def test_phantom_truth_layout_and_shifted_prediction(tmp_path):
    truth = write_phantom_truth(tmp_path / "truth")
    pred = write_pred(tmp_path / "pred", frame_shift=1, shift_rows=2)
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report)
    assert result.exit_code == 0, out
    m = metrics(report)
    assert m["edes_detection_rate"] == 1.0
    assert m["ed_frame_error_mean"] == 1.0
    assert m["es_frame_error_mean"] == 1.0
    assert m["edes_frame_error_max"] == 1.0
    np.testing.assert_allclose(m["ed_time_error_frames_mean"], 1.0, atol=1e-9)
    # rectangles of 10 rows shifted by 2 rows overlap in 8: Dice = 2 * 8 / 20 in every frame
    np.testing.assert_allclose(m["dice_mean"], 0.8)
    np.testing.assert_allclose(m["dice_p05"], 0.8)

    result, out = run(pred, truth, "-o", report, "--fail-under", "dice_mean=0.9",
                      "--fail-over", "ed_frame_error_mean=0.5,hr_abs_err_bpm_median=1")
    assert result.exit_code == 1
    last = out.strip().splitlines()[-1]
    assert "dice_mean" in last
    assert "ed_frame_error_mean" in last
    assert "hr_abs_err_bpm_median" not in last
    assert "Traceback" not in out


def test_missing_beat_lowers_detection_rate(tmp_path):
    truth = write_phantom_truth(tmp_path / "truth")
    pred = write_pred(tmp_path / "pred", with_masks=False)
    beats().drop(index=1).to_csv(pred / "fish1" / "beats.csv", index=False)
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report, "--fail-under", "edes_detection_rate=0.99")
    assert result.exit_code == 1
    assert "edes_detection_rate=0.6667 < 0.99" in out
    m = metrics(report)
    assert m["edes_detection_rate"] == pytest.approx(4 / 6)
    assert m["dice_mean"] is None  # no predicted masks: NaN, written as null


def test_heartseg_mask_folder_and_unmatched_videos(tmp_path):
    truth = write_heartseg_truth(tmp_path / "truth")
    write_heartseg_truth(truth, stem="only_truth")
    pred = write_pred(tmp_path / "pred", shift_rows=5)
    write_pred(pred, stem="only_pred")
    found = find_truth_videos(truth)
    assert sorted(found) == ["fish1", "only_truth"]
    assert found["fish1"].beats is None
    assert sorted(find_pred_videos(pred)) == ["fish1", "only_pred"]
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report)
    assert result.exit_code == 0, out
    m = metrics(report)
    np.testing.assert_allclose(m["dice_mean"], 0.5)  # 10 rows shifted by 5
    assert m["edes_detection_rate"] is None  # no truth beats: NaN, written as null
    assert m["videos_only_in_pred"] == ["only_pred"]
    assert m["videos_only_in_truth"] == ["only_truth"]
    assert "only in TRUTH (not evaluated): only_truth" in out
    status = pd.read_csv(report / "evaluation.csv").set_index("video")["status"]
    assert status.to_dict() == {"fish1": "ok", "only_pred": "only_pred",
                                "only_truth": "only_truth"}


def test_own_annotation_folder_layout(tmp_path):
    pred = write_pred(tmp_path / "pred")
    truth = tmp_path / "truth" / "fish1"
    truth.mkdir(parents=True)
    shutil.copy(pred / "fish1" / "beats.csv", truth / "beats.csv")
    tifffile.imwrite(truth / "masks.tif", masks())
    report = tmp_path / "report"
    result, out = run(pred, truth.parent, "-o", report)
    assert result.exit_code == 0, out
    m = metrics(report)
    assert m["dice_mean"] == 1.0
    assert m["edes_detection_rate"] == 1.0


def test_unknown_metric_is_a_usage_error(tmp_path):
    pred = write_pred(tmp_path / "pred")
    result, out = run(pred, pred, "-o", tmp_path / "r", "--fail-under", "dice=0.9")
    assert result.exit_code == 2
    assert "unknown metric 'dice'" in out
    assert not (tmp_path / "r").exists()


def test_bad_input_gives_one_line_error(tmp_path):
    pred = write_pred(tmp_path / "pred")
    other = write_pred(tmp_path / "other", stem="fish2")
    result, out = run(pred, other, "-o", tmp_path / "r")
    assert result.exit_code == 1
    assert out.startswith("Error: no video in")
    assert len(out.strip().splitlines()) == 1
    result, out = run(pred, tmp_path / "missing", "-o", tmp_path / "r")
    assert result.exit_code == 2
    assert "does not exist" in out
    assert "Traceback" not in out


def test_mask_size_mismatch_is_reported_per_video(tmp_path):
    pred = write_pred(tmp_path / "pred")
    truth = write_phantom_truth(tmp_path / "truth")
    tifffile.imwrite(truth / "fish1.truth" / "masks.tif", np.zeros((N_FRAMES, H, W + 2), np.uint8))
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report, "--fail-under", "dice_mean=0.5")
    assert result.exit_code == 1
    assert "fish1: not evaluated" in out
    assert "34x24" in out
    assert pd.read_csv(report / "evaluation.csv").loc[0, "status"] == "error"


def test_failed_prediction_counts_as_missed_and_chunking_does_not_matter(tmp_path):
    truth = write_phantom_truth(tmp_path / "truth")
    write_phantom_truth(truth, stem="fish2")
    pred = write_pred(tmp_path / "pred", shift_rows=2)
    summary = pd.read_csv(pred / "summary.csv")
    failed = pd.DataFrame({"video": ["fish2"], "status": ["failed"], "fps": [np.nan]})
    pd.concat([summary, failed]).to_csv(pred / "summary.csv", index=False)
    for chunk in ("5", "64"):
        report = tmp_path / f"report{chunk}"
        result, out = run(pred, truth, "-o", report, "--chunk-frames", chunk, "-q")
        assert result.exit_code == 0, out
        m = metrics(report)
        assert m["n_videos"] == 2
        assert m["edes_detection_rate"] == 0.5
        np.testing.assert_allclose(m["dice_mean"], 0.8)  # fish1 only: fish2 has no masks
        assert m["n_frames_dice"] == N_FRAMES
        assert "ED frame" not in out  # -q: no table
    per_video = pd.read_csv(report / "evaluation.csv").set_index("video")
    assert per_video.loc["fish2", "pred_status"] == "failed"
    assert per_video.loc["fish2", "edes_detection_rate"] == 0.0


def test_metrics_over_the_videos_that_passed_qc(tmp_path):
    truth = write_phantom_truth(tmp_path / "truth", stem="good")
    write_phantom_truth(truth, stem="bad")
    pred = write_pred(tmp_path / "pred", stem="good", qc_pass=True)
    write_pred(pred, stem="bad", frame_shift=1, shift_rows=2, qc_pass=False)
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report, "-q")
    assert result.exit_code == 0, out
    m = metrics(report)
    assert m["n_videos"] == 2
    np.testing.assert_allclose(m["dice_mean"], (1.0 + 0.8) / 2)  # bad: Dice 0.8 every frame
    assert m["ed_frame_error_mean"] == 0.5
    assert m["qc_passed"]["n_videos"] == 1
    assert m["qc_passed"]["dice_mean"] == 1.0
    assert m["qc_passed"]["ed_frame_error_mean"] == 0.0
    assert "passed QC: 1 of 2 videos" in out
    per_video = pd.read_csv(report / "evaluation.csv").set_index("video")
    assert per_video.loc["good", "qc_pass"]
    assert not per_video.loc["bad", "qc_pass"]


def test_no_qc_column_means_no_qc_split(tmp_path):
    truth = write_phantom_truth(tmp_path / "truth")
    pred = write_pred(tmp_path / "pred")
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report, "-q")
    assert result.exit_code == 0, out
    assert metrics(report)["qc_passed"] is None
    assert "passed QC" not in out


def test_end_systole_is_scored_on_its_own_per_video_and_pooled(tmp_path):
    from medaka_heart.mask_scores import mask_scores

    truth = write_phantom_truth(tmp_path / "truth")
    write_phantom_truth(tmp_path / "truth", stem="fish2")
    pred = write_pred(tmp_path / "pred")  # fish1 below: masks that do not shrink
    write_pred(tmp_path / "pred", stem="fish2")  # fish2: the truth itself
    stiff = masks()
    for t, w in enumerate(widths()):
        stiff[t, ROWS[0]:ROWS[1], 8:8 + max(w, 13)] = 255  # never narrower than 13 px
    tifffile.imwrite(pred / "fish1" / "masks.tif", stiff, compression="zlib")
    report = tmp_path / "report"
    result, out = run(pred, truth, "-o", report)
    assert result.exit_code == 0, out
    assert "masks at ED-like / ES-like frames: Dice 1 / " in out
    assert "area error +0.0 / +24.2 % of the true area" in out  # pooled: half of fish1's
    expected = mask_scores(stiff, masks())  # the same scores, from the whole arrays
    assert expected.area_error_ed_pct == 0.0
    assert expected.area_error_es_pct > 40  # widths 8-9 drawn 13 wide
    per_video = pd.read_csv(report / "evaluation.csv").set_index("video")
    for key in ("dice_ed", "dice_es", "area_error_ed_pct", "area_error_es_pct"):
        assert per_video.at["fish1", key] == pytest.approx(getattr(expected, key))
    assert per_video.at["fish2", "area_error_es_pct"] == 0.0
    m = metrics(report)  # pooled: each video's own ED-like and ES-like frames
    assert m["dice_ed"] == 1.0
    assert m["area_error_ed_pct"] == 0.0
    assert m["area_error_es_pct"] == pytest.approx(expected.area_error_es_pct / 2)
    assert m["dice_es"] == pytest.approx((expected.dice_es + 1.0) / 2)
