"""QC figures and report.html: trace, montage, overlay, and a report that renders in Chromium.

The report test renders report.html in headless Chromium (Debian packages chromium and
chromium-driver; `make test` installs them as root). Without Chromium it fails when CI is
set and is skipped otherwise.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from skimage.draw import ellipse
from test_qc import FPS, ellipse_masks, regular_ed_times, skipped_ed_times

from medaka_heart.batch import run_batch
from medaka_heart.cli import main
from medaka_heart.config import Config
from medaka_heart.io.discover import VideoSource
from medaka_heart.io.video import open_video
from medaka_heart.morphometry import region_features
from medaka_heart.options import BatchOptions, VideoOptions
from medaka_heart.pipeline import analyze_video
from medaka_heart.report.montage import FrameReservoir, montage_frames
from medaka_heart.report.overlay import ellipse_axes_px

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def write_video(folder: Path, stem: str, masks: np.ndarray) -> tuple[Path, Path]:
    """`stem.tif` (noisy uint8 frames, bright ventricle, fps in the metadata) and its masks."""
    rng = np.random.default_rng(len(stem))
    frames = rng.integers(0, 60, masks.shape, dtype=np.uint8) + 140 * masks.astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    video, mask_path = folder / f"{stem}.tif", folder / f"{stem}_masks.tif"
    tifffile.imwrite(video, frames, metadata={"fps": FPS})
    tifffile.imwrite(mask_path, masks.astype(np.uint8) * 255)
    return video, mask_path


def is_png(data: bytes) -> bool:
    """PNG signature and an image OpenCV can decode."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None


# --- geometry drawn on frames ------------------------------------------------------------


@pytest.mark.parametrize("rotation", [0.3, -1.1, 1.4])
def test_ellipse_axes_end_on_the_outline(rotation):
    mask = np.zeros((120, 160), dtype=bool)
    rr, cc = ellipse(60, 75, 18, 40, shape=mask.shape, rotation=rotation)
    mask[rr, cc] = True
    f = region_features(mask, 2.0)
    major, minor = ellipse_axes_px(f["centroid_x_um"], f["centroid_y_um"], f["orientation_rad"],
                                   f["major_um"], f["minor_um"], 2.0)
    np.testing.assert_allclose(np.linalg.norm(major[1] - major[0]), 80, rtol=0.02)
    np.testing.assert_allclose(np.linalg.norm(minor[1] - minor[0]), 36, rtol=0.03)
    centre = major.mean(axis=0)
    np.testing.assert_allclose(centre, [75, 60], atol=0.1)
    for end in (*major, *minor):  # just inside at 90% of the way, outside at 110%
        for factor, inside in ((0.9, True), (1.1, False)):
            x, y = centre + factor * (end - centre)
            assert bool(mask[round(y), round(x)]) is inside


def test_reservoir_keeps_small_frames_within_its_budget():
    reservoir = FrameReservoir(480, 640, max_side=160, budget_mb=1.0)
    assert reservoir.size == (160, 120)
    frames = np.zeros((64, 480, 640, 3), dtype=np.uint8)
    masks = np.zeros((64, 480, 640), dtype=bool)
    masks[:, 100:200, 300:400] = True
    for _ in range(4):
        reservoir.add(frames, masks)
    assert len(reservoir) == reservoir.capacity == 2**20 // (160 * 120 * 4)  # 13 frames
    kept = sum(f.nbytes + m.nbytes for f, m in zip(reservoir.frames, reservoir.masks, strict=True))
    assert kept <= 2**20
    assert reservoir.masks[0].shape == (120, 160)
    assert reservoir.masks[0][25:50, 75:100].all()
    assert not reservoir.masks[0][:20].any()


def test_reservoir_keeps_gray_frames_in_their_dtype_and_shows_them_in_rgb():
    reservoir = FrameReservoir(480, 640, max_side=160, budget_mb=1.0)
    frames = np.zeros((20, 480, 640), dtype=np.uint16)
    frames[:, :, 320:] = 4000  # right half bright
    reservoir.add(frames, np.zeros((20, 480, 640), dtype=bool))
    assert len(reservoir) == 13  # as many as RGB copies would take: the same beats shown
    assert reservoir.frames[0].dtype == np.uint16
    assert reservoir.frames[0].shape == (120, 160)
    shown = reservoir.rgb(3)
    assert shown.dtype == np.uint8
    assert shown.shape == (120, 160, 3)
    assert (shown[:, :70] == 0).all()
    assert (shown[:, 90:] == 255).all()


def test_montage_shows_ed_and_es_of_the_most_typical_beats():
    beats = pd.DataFrame({"beat": range(7), "ed_frame": [2, 12, 22, 32, 42, 52, 62],
                          "es_frame": [6, 16, 26, 36, 46, 56, -1],
                          "ef_pct": [50.0, 40.0, 52.0, 49.0, 70.0, 51.0, 50.5]})
    frames = pd.DataFrame({"frame": range(70), "volume_pl": np.sin(np.arange(70) / 3) + 2})
    picks, note = montage_frames(beats, frames, 40)
    # beats 0-3 lie within the 40 kept frames; median EF 50.5: beats 0, 2, 3 are nearest
    assert picks == [("beat 0 ED", 2), ("beat 0 ES", 6), ("beat 2 ED", 22), ("beat 2 ES", 26),
                     ("beat 3 ED", 32), ("beat 3 ES", 36)]
    assert note == ""
    picks, note = montage_frames(beats, frames, 5)  # no whole beat kept
    volume = frames["volume_pl"].to_numpy()[:5]
    assert picks == [("largest", int(np.argmax(volume))), ("smallest", int(np.argmin(volume)))]
    assert note
    frames["volume_pl"] = np.nan
    picks, _ = montage_frames(beats.iloc[:0], frames, 40)
    assert [i for _, i in picks] == [0, 20, 39]


# --- the pipeline writes them ------------------------------------------------------------


def test_pipeline_draws_trace_and_montage_in_the_video_folder(tmp_path):
    video, masks = write_video(tmp_path, "fish", ellipse_masks(regular_ed_times(6.0), 90))
    out = tmp_path / "out"
    result = analyze_video(video, out, Config(), masks=masks)
    assert result.qc.passed
    assert sorted(p.name for p in out.iterdir()) == ["fish"]  # nothing beside the folder
    for name in ("trace.png", "montage.png"):
        data = (out / "fish" / name).read_bytes()
        assert is_png(data), name
    trace = cv2.imread(str(out / "fish" / "trace.png"))
    assert trace.shape[1] >= 800
    assert trace.std() > 20
    assert not (out / "fish" / "overlay.avi").exists()
    analyze_video(video, out, Config(), VideoOptions(plots=False), masks=masks)
    assert not (out / "fish" / "trace.png").exists()


def test_a_failing_figure_never_loses_the_numbers(tmp_path, monkeypatch, caplog):
    import medaka_heart.report.trace as trace

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(trace, "plot_trace", broken)
    video, masks = write_video(tmp_path, "fish", ellipse_masks(regular_ed_times(4.0), 60))
    with caplog.at_level(logging.WARNING):
        analyze_video(video, tmp_path / "out", Config(), masks=masks)
    assert (tmp_path / "out" / "fish" / "beats.csv").exists()
    assert "no ink" in caplog.text


def test_cli_figures_options_and_resume(tmp_path):
    masks = ellipse_masks(regular_ed_times(4.0), 60, shape=(96, 128), a0=32, b0=20)
    video, mask_path = write_video(tmp_path, "fish", masks)
    out = tmp_path / "out"
    args = ["analyze", str(video), "--masks", str(mask_path), "-o", str(out), "--no-progress",
            "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--no-plots"])
    assert result.exit_code == 0, result.output
    assert not (out / "fish" / "trace.png").exists()
    assert (out / "report.html").exists()
    result = CliRunner().invoke(main, args)  # figures asked for now: the video is done again
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out / "summary.csv").loc[0, "status"] == "ok"
    assert (out / "fish" / "trace.png").exists()
    assert (out / "fish" / "montage.png").exists()
    result = CliRunner().invoke(main, [*args, "--overlay-video"])  # and again for the overlay
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out / "summary.csv").loc[0, "status"] == "ok"
    overlay = list(open_video(out / "fish" / "overlay.avi").chunks(64))
    frames = np.concatenate(overlay)
    assert frames.shape == (60, 96, 128, 3)
    outline = masks & ~cv2.erode(masks.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rgb = frames.astype(float)
    yellow = (rgb[..., 0] + rgb[..., 1]) / 2 - rgb[..., 2]  # high on the yellow outline
    assert yellow[outline].mean() > 60 > 15 > abs(yellow[~masks].mean())
    result = CliRunner().invoke(main, args)  # everything there: reused
    assert pd.read_csv(out / "summary.csv").loc[0, "status"] == "reused"


# --- report.html -------------------------------------------------------------------------


class _Tags(HTMLParser):
    """img sources, link targets, table rows and script/link/iframe tags of an HTML page."""

    def __init__(self):
        super().__init__()
        self.images, self.hrefs, self.rows, self.external, self.flagged = [], [], [], [], []
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "a":
            self.hrefs.append(a.get("href", ""))
        elif tag == "table" and a.get("id") == "summary":
            self._in_summary = True
        elif tag == "tr" and self._in_summary and a.get("class"):
            self.rows.append(a["class"])
        elif tag in ("script", "link", "iframe", "object", "embed"):
            self.external.append(tag)
        elif tag == "div" and a.get("class") == "video":
            self.flagged.append(a.get("id"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_summary = False


def parse(text: str) -> _Tags:
    tags = _Tags()
    tags.feed(text)
    return tags


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> Path:
    """A run of three videos (clean, no heart, skipped beats) on a plate, two genotypes."""
    root = tmp_path_factory.mktemp("report")
    n = 90
    cases = {"clean": ellipse_masks(regular_ed_times(6.0), n),
             "no_heart": np.zeros((n, 48, 64), dtype=bool),
             "skipping": ellipse_masks(skipped_ed_times(6.0, skip=(5,)), n)}
    sources = []
    for (name, masks), well, genotype in zip(cases.items(), ("A01", "B03", "C12"),
                                             ("wt", "wt", "mut <b>"), strict=True):
        video, mask_path = write_video(root / "in", name, masks)
        sources.append(VideoSource(video, masks=mask_path,
                                   metadata={"well": well, "genotype": genotype}))
    run_batch(sources, list(cases), root / "out", Config(), VideoOptions(pixel_size_um=1.5),
              BatchOptions(workers=1, show_progress=False, group_by=["genotype"]))
    return root / "out"


def test_summary_has_the_qc_columns(report_run):
    summary = pd.read_csv(report_run / "summary.csv", dtype=str, keep_default_na=False)
    summary = summary.set_index("video")
    assert summary.loc["clean", "qc_pass"] == "True"
    assert summary.loc["no_heart", "qc_pass"] == "False"
    assert summary.loc["no_heart", "qc_flags"] == "no_heart;weak_rhythm"  # noise beats nowhere
    assert summary.loc["no_heart", "qc_rhythm_pass"] == summary.loc["no_heart",
                                                                    "qc_dimensions_pass"] == "False"
    assert summary.loc["clean", "hr_source"] == "both"
    assert summary.loc["skipping", "qc_pass"] == "True"
    assert summary.loc["skipping", "qc_findings"] == "irregular_rhythm"
    assert summary.loc["clean", "qc_flags"] == summary.loc["clean", "qc_findings"] == ""


def test_report_is_one_self_contained_file(report_run):
    text = (report_run / "report.html").read_text(encoding="utf-8")
    tags = parse(text)
    assert tags.external == []  # no script, style sheet or frame to fetch
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:|//|file:)", text, re.I)
    assert "@import" not in text
    assert "url(" not in text
    # every picture is an embedded PNG: conditions, plate, 2 x 2 thumbnails of flagged videos
    assert len(tags.images) == 6
    for src in tags.images:
        assert src.startswith("data:image/png;base64,")
        assert is_png(base64.b64decode(src.split(",", 1)[1], validate=True))
    assert tags.rows == ["ok", "flagged", "finding"]  # one table row per video, in order
    assert tags.flagged == ["no_heart", "skipping"]
    assert "no_heart: no ventricle found in any frame" in text
    assert "irregular_rhythm: 1 skipped beat(s)" in text
    assert "mut &lt;b&gt;" in text
    assert "mut <b>" not in text
    for href in tags.hrefs:  # links stay inside the run's folder
        target = report_run / href
        assert target.is_file(), href


def chromium() -> str:
    """Path of a Chromium executable; without one, fail under CI and skip elsewhere."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    message = ("headless Chromium is needed to render report.html: install the Debian packages "
               "chromium and chromium-driver (`make test` does so when run as root)")
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               "--window-size=1200,2000", *args]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def test_report_renders_in_headless_chromium(report_run, tmp_path):
    url = (report_run / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    dom = run_chromium(["--dump-dom", f"--screenshot={shot}", url], tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    tags = parse(dom.stdout)
    assert tags.rows == ["ok", "flagged", "finding"]
    assert len(tags.images) == 6
    assert all(is_png(base64.b64decode(s.split(",", 1)[1])) for s in tags.images)
    assert "clean" in dom.stdout
    assert "skipping" in dom.stdout

    if not shot.is_file():  # a Chromium that does one thing per call
        result = run_chromium([f"--screenshot={shot}", url], tmp_path / "profile")
        assert result.returncode == 0, result.stderr[-2000:]
        assert shot.is_file()
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (2000, 1200)
    not_white = (image < 235).any(axis=2).mean()
    assert not_white > 0.05  # text, table and figures drawn, not a blank page
    colours = np.unique(image.reshape(-1, 3) // 16, axis=0)
    assert len(colours) > 40  # the embedded figures, not only black text on white


def test_montage_captions_carry_the_beat_table_values():
    from medaka_heart.report.montage import beat_value

    beats = pd.DataFrame({"beat": [0, 1], "edv_pl": [510.5, 498.0], "esv_pl": [300.25, 290.0],
                          "ed_area_um2": [9000.0, 8900.0], "es_area_um2": [7000.0, 6900.0]})
    assert beat_value(beats, "beat 1 ED", "volume_pl") == 498.0
    assert beat_value(beats, "beat 0 ES", "volume_pl") == 300.25
    assert beat_value(beats, "beat 0 ES", "area_um2") == 7000.0
    assert beat_value(beats, "largest", "volume_pl") is None
