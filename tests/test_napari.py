"""The napari plugin: reader, saving corrections, adapt and re-analyse from the dock widget.

The pure steps (medaka_heart.io.result_folder, medaka_heart.napari.loop / reader) are tested
without Qt. The viewer tests run napari headless: Qt's offscreen platform, drawing with
OpenGL on a virtual X server (Xvfb, Mesa's software renderer) that the `headless_qt` fixture
starts when there is no display; `make test` installs Xvfb and the libraries the Qt wheels
need as root (as CI runs it). Without napari (the `napari` extra) or Xvfb the viewer tests
fail when CI is set and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from skimage.draw import ellipse

from medaka_heart.cli import main
from medaka_heart.io.annotations import read_annotations
from medaka_heart.io.corrections import read_corrections, write_corrections
from medaka_heart.io.result_folder import find_result, read_beats, read_result_folder
from medaka_heart.napari import loop
from medaka_heart.napari.reader import META_KEY, get_reader, result_layers

SAMPLE = Path(__file__).parents[1] / "sample_data" / "hts_s2024_000.avi"
N, H, W = 12, 48, 64
CENTRE = (24, 32)  # row, column of every ellipse
BEATS = [(0, 1, 4), (1, 6, 9), (2, 11, -1)]  # beat, ED frame, ES frame (-1: none)
PLUGIN, WIDGET = "medaka-heart", "Correct, adapt, re-analyse"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def need(reason: str) -> None:
    """Fail under CI, skip elsewhere: CI must run every viewer test."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the napari tests must run)")
    pytest.skip(reason)


def ellipse_stack(radii: list[int]) -> np.ndarray:
    """(len(radii), H, W) bool: an ellipse about CENTRE with semi-axes (r, r + 6) per frame."""
    masks = np.zeros((len(radii), H, W), bool)
    for i, r in enumerate(radii):
        rr, cc = ellipse(*CENTRE, r, r + 6, shape=(H, W))
        masks[i, rr, cc] = True
    return masks


def write_result(folder: Path, *, pixel_source: str = "user") -> tuple[Path, np.ndarray,
                                                                       np.ndarray]:
    """A hand-built result folder `folder/run/clip` of a lossless gray AVI written by OpenCV:
    (folder, frames (N, H, W) uint8, masks (N, H, W) bool)."""
    rng = np.random.default_rng(3)
    masks = ellipse_stack([8 + (i % 5) for i in range(N)])
    frames = (rng.integers(0, 50, (N, H, W)) + 150 * masks).astype(np.uint8)
    video = folder / "clip.avi"
    video.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (W, H), True)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    result = folder / "run" / "clip"
    result.mkdir(parents=True)
    tifffile.imwrite(result / "masks.tif", masks.astype(np.uint8) * 255)
    pd.DataFrame(BEATS, columns=["beat", "ed_frame", "es_frame"]).assign(
        hr_bpm=120.0).to_csv(result / "beats.csv", index=False)
    (result / "provenance.json").write_text(json.dumps(
        {"input": str(video), "fps": 10.0, "fps_source": "container", "pixel_size_um": 2.5,
         "pixel_size_source": pixel_source}))
    return result, frames, masks


@pytest.fixture
def result(tmp_path):
    return write_result(tmp_path)


# ------------------------------------------------------------------ pure: reading a result

def test_read_result_folder_gives_frames_masks_and_beats(result):
    folder, frames, masks = result
    read = read_result_folder(folder)
    np.testing.assert_array_equal(read.frames, frames)  # equal RGB channels read as gray
    np.testing.assert_array_equal(read.masks, masks)
    assert read.beats == ((0, 1, 4), (1, 6, 9), (2, 11, -1))
    assert read.ed_frames == (1, 6, 11)
    assert read.es_frames == (4, 9)
    assert (read.fps, read.pixel_size_um, read.pixel_size_source) == (10.0, 2.5, "user")
    assert read.name == "run/clip"
    assert read.corrected == {}


def test_read_result_folder_puts_corrections_in(result):
    folder, _, masks = result
    fixed = ellipse_stack([15])[0]
    write_corrections(folder, {5: fixed})
    read = read_result_folder(folder)
    assert list(read.corrected) == [5]
    current = read.current_masks()
    np.testing.assert_array_equal(current[5], fixed)
    np.testing.assert_array_equal(np.delete(current, 5, axis=0), np.delete(masks, 5, axis=0))
    np.testing.assert_array_equal(read.masks, masks)  # the analysis' masks stay as written


def test_read_result_folder_refuses_masks_of_another_video(result):
    folder, _, masks = result
    tifffile.imwrite(folder / "masks.tif", masks[:-2].astype(np.uint8) * 255)
    with pytest.raises(ValueError, match=r"10 masks of 64x48 px but .* has 12 frames"):
        read_result_folder(folder)


def test_read_beats_of_a_run_without_beats(tmp_path):
    (tmp_path / "beats.csv").write_text("beat,ed_frame,es_frame\n")
    assert read_beats(tmp_path) == ()
    assert read_beats(tmp_path / "nowhere") == ()


def test_find_result_by_video(result, tmp_path):
    folder, _, _ = result
    assert find_result(folder.parent, tmp_path / "clip.avi") == folder
    with pytest.raises(FileNotFoundError, match="no result folder"):
        find_result(folder.parent, tmp_path / "other.avi")


# ------------------------------------------------------------------ pure: reader layers

def test_reader_declines_what_is_not_a_result_folder(result, tmp_path):
    folder, _, _ = result
    assert get_reader(str(tmp_path / "clip.avi")) is None
    assert get_reader(str(folder.parent)) is None  # the run folder holds results, is none
    assert get_reader(str(folder)) is not None
    assert get_reader([str(folder), str(tmp_path)]) is None


def test_result_layers_image_labels_and_ed_es_points(result):
    folder, frames, masks = result
    image, labels, points = result_layers(read_result_folder(folder))
    assert [layer[2] for layer in (image, labels, points)] == ["image", "labels", "points"]
    assert [layer[1]["name"] for layer in (image, labels, points)] == [
        "run/clip", "run/clip masks", "run/clip ED/ES"]
    np.testing.assert_array_equal(image[0], frames)
    assert image[1]["rgb"] is False
    assert labels[0].dtype == np.uint8
    np.testing.assert_array_equal(labels[0], masks.astype(np.uint8))
    meta = points[1]["metadata"][META_KEY]
    assert (meta["ed_frames"], meta["es_frames"]) == ([1, 6, 11], [4, 9])
    assert meta["folder"] == str(folder)
    # one point per ED and ES frame at the ellipse's centre; beat 2 has no ES
    np.testing.assert_allclose(points[0], [[1, *CENTRE], [4, *CENTRE], [6, *CENTRE],
                                           [9, *CENTRE], [11, *CENTRE]])
    assert points[1]["features"] == {"phase": ["ED", "ES", "ED", "ES", "ED"],
                                     "beat": [0, 0, 1, 1, 2]}


# ------------------------------------------------------------------ pure: the loop's steps

@pytest.mark.parametrize(("text", "frames"), [
    ("", []), ("3", [3]), ("3, 10-12 20", [3, 10, 11, 12, 20]), ("5 - 7;5", [5, 6, 7]),
])
def test_parse_frames(text, frames):
    assert loop.parse_frames(text) == frames


@pytest.mark.parametrize("text", ["x", "7-5", "-3", "2.5", "1-"])
def test_parse_frames_refuses(text):
    with pytest.raises(ValueError, match="not a frame index or a range"):
        loop.parse_frames(text)


def test_changed_frames_compares_ventricles_not_label_values():
    original = ellipse_stack([8, 9, 10, 11, 12])
    edited = original.astype(np.uint8)
    edited[1, 0, 0] = 1  # one pixel more
    edited[3][original[3]] = 2  # another label value, the same ventricle
    edited[4][:] = 0  # erased
    assert loop.changed_frames(original, edited) == [1, 4]
    assert loop.changed_frames(original, original) == []
    with pytest.raises(ValueError, match="edited labels"):
        loop.changed_frames(original, edited[:4])


def test_frames_to_save_adds_earlier_and_listed_frames():
    original = ellipse_stack([8, 9, 10, 11, 12])
    edited = original.copy()
    edited[2, 0, 0] = True
    assert loop.frames_to_save(original, edited, corrected=[4], listed=[0]) == [0, 2, 4]
    assert loop.frames_to_save(original, edited) == [2]
    with pytest.raises(ValueError, match="frame 5 is not one of the 5 frames"):
        loop.frames_to_save(original, edited, listed=[5])


def test_save_corrections_round_trip_through_read_annotations(result):
    folder, frames, masks = result
    edited = masks.astype(np.uint8)
    fixed = ellipse_stack([14])[0]
    edited[3] = fixed
    assert loop.save_corrections(folder, edited, listed=[7]) == [3, 7]
    assert sorted(p.name for p in (folder / "corrected").iterdir()) == [
        "frame_000003_mask.png", "frame_000007_mask.png"]
    (found,) = read_annotations(folder.parent)
    assert found.frames == (3, 7)
    np.testing.assert_array_equal(found.masks[0], fixed)
    np.testing.assert_array_equal(found.masks[1], masks[7])
    np.testing.assert_array_equal(found.images[0][..., 0], frames[3])
    # saving again keeps frame 7 although it equals the analysis' mask
    assert loop.save_corrections(folder, edited) == [3, 7]


def test_commands(result, tmp_path):
    folder, _, _ = result
    python = [sys.executable, "-m", "medaka_heart"]
    assert loop.adapt_command(tmp_path, tmp_path / "m", minutes=2.0, steps=5) == [
        *python, "adapt", str(tmp_path), "-o", str(tmp_path / "m"), "--minutes", "2.0",
        "--steps", "5", "--no-progress"]
    assert loop.adapt_command("d", "m", holdout=0.0, init="i")[3:] == [
        "adapt", "d", "-o", "m", "--init", "i", "--holdout", "0.0", "--no-progress"]
    read = read_result_folder(folder)
    assert loop.analyze_command(read, "out", "m") == [
        *python, "analyze", str(tmp_path / "clip.avi"), "-o", "out", "--model", "m",
        "--save-masks", "--no-progress", "--pixel-size", "2.5"]  # fps came from the file
    assert loop.default_folders(folder) == (folder.parent, folder.parent.with_name("run_model"),
                                            folder.parent.with_name("run_adapted"))


def test_job_yields_output_and_raises_on_failure():
    ok = loop.Job([sys.executable, "-c", "print('a'); import sys; print('b', file=sys.stderr)"])
    assert list(ok.lines()) == ["a", "b"]
    bad = loop.Job([sys.executable, "-c", "print('working'); raise SystemExit('it broke')"])
    with pytest.raises(loop.CommandError, match=r"exit status 1\): working \| it broke"):
        list(bad.lines())


def test_job_stop_ends_the_process():
    job = loop.Job([sys.executable, "-c", "import time; print('up', flush=True); "
                                          "time.sleep(60)"])
    lines = job.lines()
    start = time.perf_counter()
    assert next(lines) == "up"
    job.stop()
    with pytest.raises(loop.CommandError, match="stopped"):
        list(lines)
    assert time.perf_counter() - start < 10


def test_the_steps_import_neither_napari_nor_qt():
    code = ("import sys, medaka_heart.napari.loop, medaka_heart.napari.reader, medaka_heart.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'vispy')))")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert got.stdout.strip() == "[]"


# ------------------------------------------------------------------ napari, headless

@pytest.fixture(scope="session")
def headless_qt():
    """QT_QPA_PLATFORM=offscreen, with OpenGL from a virtual X server where no display is set.

    Xvfb is started with the parent-death signal set (util-linux setpriv), so it ends when
    this process does: Qt holds its connection until then, and ending the server earlier
    would make Xlib exit the process with status 1.
    """
    if importlib.util.find_spec("napari") is None or importlib.util.find_spec("pytestqt") is None:
        need("napari and pytest-qt are not installed (pip install -e '.[test]')")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if not os.environ.get("DISPLAY"):
        xvfb, setpriv = shutil.which("Xvfb"), shutil.which("setpriv")
        if xvfb is None or setpriv is None:
            need("Xvfb or setpriv not found: install the Debian packages xvfb and util-linux "
                 "(`make test` does as root)")
        read, write = os.pipe()
        os.set_inheritable(write, True)
        pid = os.posix_spawn(setpriv, [setpriv, "--pdeathsig", "TERM", xvfb, "-displayfd",
                                       str(write), "-screen", "0", "1024x768x24", "-nolisten",
                                       "tcp"], os.environ)
        os.close(write)
        with os.fdopen(read) as pipe:
            display = pipe.readline().strip()
        if not display:
            os.waitpid(pid, 0)
            need("Xvfb did not start")
        os.environ["DISPLAY"] = f":{display}"
    return os.environ["DISPLAY"]


@pytest.fixture
def viewer(headless_qt, request):
    return request.getfixturevalue("make_napari_viewer")()


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A real `analyze --save-masks` run of the sample HTS video (25 frames, 400x400)."""
    out = tmp_path_factory.mktemp("analysed") / "run"
    got = CliRunner().invoke(main, ["analyze", str(SAMPLE), "-o", str(out), "--save-masks",
                                    "--no-plots", "--no-progress", "--workers", "1"])
    assert got.exit_code == 0, got.output
    return out / SAMPLE.stem


def wait_idle(qtbot, widget, seconds: float) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=int(seconds * 1000))


def test_viewer_opens_a_real_result_folder(viewer, analysed):
    layers = viewer.open(str(analysed), plugin=PLUGIN)
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels", "Points"]
    image, labels, points = layers
    assert image.data.shape == (25, 400, 400, 3)
    assert image.rgb
    masks = tifffile.imread(analysed / "masks.tif")
    np.testing.assert_array_equal(labels.data, masks // 255)
    beats = pd.read_csv(analysed / "beats.csv")
    ed = [int(f) for f in beats["ed_frame"] if f >= 0]
    es = [int(f) for f in beats["es_frame"] if f >= 0]
    assert len(ed) >= 3  # the sample's beats were found
    assert labels.metadata[META_KEY]["ed_frames"] == ed
    assert labels.metadata[META_KEY]["es_frames"] == es
    assert sorted(points.data[:, 0].astype(int)) == sorted(ed + es)
    phase = dict(zip(points.data[:, 0].astype(int), points.features["phase"], strict=True))
    assert [phase[f] for f in ed] == ["ED"] * len(ed)
    assert [phase[f] for f in es] == ["ES"] * len(es)


def test_widget_saves_the_painted_frame(viewer, result, qtbot):
    folder, _, masks = result
    _, labels, _ = viewer.open(str(folder), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert widget.layer.value is labels
    assert Path(widget.model.value) == folder.parent.with_name("run_model")
    labels.brush_size = 5
    labels.paint((2, 5, 5), 1)  # a brush stroke far from the ventricle on frame 2
    assert widget.save() == [2]
    saved = read_corrections(folder)
    assert list(saved) == [2]
    np.testing.assert_array_equal(saved[2], labels.data[2] != 0)
    assert saved[2].sum() > masks[2].sum()
    (found,) = read_annotations(folder.parent)
    np.testing.assert_array_equal(found.masks[0], labels.data[2] != 0)
    assert "saved 1 corrected frame(s)" in widget.status.value


def test_widget_shows_errors_instead_of_raising(viewer, result, qtbot, tmp_path):
    folder, _, _ = result
    viewer.open(str(folder), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.frames.value = "3, x"
    assert widget.save() == []
    assert "not saved: 'x' is not a frame index" in widget.status.value
    widget.adapt()  # nothing corrected yet
    assert "no result folder with corrected frames" in widget.status.value
    widget.reanalyse()  # no model yet
    assert "no adapted model here" in widget.status.value
    assert not widget.busy
    # a command that fails: adapt refuses an output folder that is not a model folder
    widget.frames.value = "3"
    assert widget.save() == [3]
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    widget.model.value = tmp_path / "taken"
    widget.adapt()
    assert widget.busy
    wait_idle(qtbot, widget, 60)
    assert "medaka-heart adapt failed (exit status 1)" in widget.status.value
    assert "is not a model folder" in widget.status.value
    assert widget.adapt_button.enabled


@pytest.mark.slow
def test_widget_adapts_and_reanalyses(viewer, analysed, qtbot, tmp_path):
    folder = tmp_path / "run" / analysed.name
    shutil.copytree(analysed, folder)
    _, labels, _ = viewer.open(str(folder), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    labels.brush_size = 9
    labels.paint((4, 200, 200), 1)
    widget.frames.value = "1, 3"
    assert widget.save() == [1, 3, 4]
    widget.steps.value, widget.holdout.value = 1, 0.0
    widget.adapt()
    wait_idle(qtbot, widget, 120)
    model = tmp_path / "run_model"
    assert (model / "model.pt").is_file(), widget.log.value
    assert "1 steps" in widget.log.value
    widget.reanalyse()
    wait_idle(qtbot, widget, 120)
    new = tmp_path / "run_adapted" / analysed.name
    assert "re-analysed: opened" in widget.status.value, widget.log.value
    provenance = json.loads((new / "provenance.json").read_text())
    assert Path(provenance["model"]["model"]).resolve() == model.resolve()
    assert [layer.name for layer in viewer.layers][-3:] == [
        f"run_adapted/{analysed.name}", f"run_adapted/{analysed.name} masks",
        f"run_adapted/{analysed.name} ED/ES"]
    assert viewer.layers[-2].data.shape == (25, 400, 400)  # the new masks
