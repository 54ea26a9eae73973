"""Tests of the phantom generator: the law, exact polygon truth, determinism, files."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.draw import polygon as draw_polygon
from skimage.measure import regionprops

from medaka_heart.phantom import (
    TrainingPairs,
    iter_training_pairs,
    load_preset,
    make_phantom,
    preset_names,
    sample_params,
    write_synth_set,
)
from medaka_heart.phantom.law import beat_intervals, make_law, shortenings_for_ef
from medaka_heart.phantom.shape import (
    ellipse_polygon,
    lobed_outline,
    place,
    polygon_features,
    rasterize,
)
from medaka_heart.schema import BEAT_COLUMNS, FRAME_COLUMNS

SMALL_STEREO = {"width": 160, "height": 120, "major_um": 60.0, "pixel_size_um": 1.0}
SMALL_HTS = {"size_px": 128, "pixel_size_um": 4.0}


def small_preset(name: str, **ranges):
    """A shipped preset with small frames and a short duration (fast tests)."""
    preset = load_preset(name)
    sizes = SMALL_HTS if preset.setting == "hts" else SMALL_STEREO
    fixed = {k: (float(v), float(v)) for k, v in {**sizes, "duration_s": 1.5, **ranges}.items()}
    return dataclasses.replace(preset, **fixed)


# --- the law ---------------------------------------------------------------------------


@pytest.mark.parametrize("hr_bpm", [60.0, 150.0, 240.0])
def test_fixed_rate_law_has_exact_intervals(hr_bpm):
    ed, nominal = beat_intervals(5.0, hr_bpm, np.random.default_rng(0))
    np.testing.assert_allclose(np.diff(ed), 60.0 / hr_bpm, rtol=1e-12)
    assert ed[0] <= 0 < ed[1]
    assert ed[-1] >= 5.0
    np.testing.assert_allclose(nominal, 60.0 / hr_bpm)


def test_variable_rate_law_varies_and_keeps_the_mean_rate():
    rng = np.random.default_rng(1)
    ed, _ = beat_intervals(300.0, 120.0, rng, hrv_cv=0.05)
    rr = np.diff(ed)
    assert 0.02 < rr.std() / rr.mean() < 0.08
    assert 60.0 / rr.mean() == pytest.approx(120.0, rel=0.03)


def test_contraction_is_zero_at_ed_one_at_es_and_inside_between():
    ed, nominal = beat_intervals(6.0, 100.0, np.random.default_rng(2), hrv_cv=0.05)
    law = make_law(ed, nominal, ef=0.5, kick_fraction=0.25)
    np.testing.assert_allclose(law.contraction(law.ed_times_s[1:-1]), 0.0, atol=1e-12)
    np.testing.assert_allclose(law.contraction(law.es_times_s), 1.0, atol=1e-12)
    t = np.linspace(ed[0], ed[-1], 20001)
    c = law.contraction(t)
    assert c.min() >= 0
    assert c.max() <= 1
    # the prolate volume from the axis scales peaks at each ED and bottoms at each ES
    s_major, s_minor = law.axis_scales(t)
    volume = s_major * s_minor**2
    for k in range(1, law.n_beats):
        beat = (t >= ed[k] - 1e-9) & (t < ed[k + 1] - 1e-3)
        assert t[beat][np.argmax(volume[beat])] == pytest.approx(ed[k], abs=2e-3)
        assert t[beat][np.argmin(volume[beat])] == pytest.approx(law.es_times_s[k], abs=2e-3)


def test_atrial_kick_refills_just_before_ed():
    ed, nominal = beat_intervals(3.0, 60.0, np.random.default_rng(3))
    law = make_law(ed, nominal, ef=0.5, kick_fraction=0.3, kick_duration_fraction=0.15)
    t_diastasis = ed[1] - 0.2  # before the kick (kick lasts 0.15 s)
    assert law.contraction(t_diastasis) == pytest.approx(0.3)
    assert law.atrial_contraction(ed[1]) == pytest.approx(1.0)
    assert law.atrial_contraction(law.es_times_s[1]) == pytest.approx(0.0)


@pytest.mark.parametrize("ratio", [0.7, 1.0, 1.4])
def test_shortenings_give_the_requested_ejection_fraction(ratio):
    ef = np.array([0.15, 0.4, 0.7])
    a_major, a_minor = shortenings_for_ef(ef, ratio)
    np.testing.assert_allclose(1 - (1 - a_minor) ** 2 * (1 - a_major), ef, atol=1e-12)
    np.testing.assert_allclose(a_major / a_minor, ratio)


# --- exact polygon features --------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "angle"), [(40.0, 20.0, 0.0), (55.0, 30.0, 0.7), (25, 24, -1.2)]
)
def test_polygon_features_of_an_ellipse(a, b, angle):
    poly = place(
        ellipse_polygon(0.5, 0.5 * b / a, 2000), major=2 * a, angle=angle, center=(100, 80)
    )
    f = polygon_features(poly)
    assert f.area == pytest.approx(np.pi * a * b, rel=5e-3)
    assert f.major == pytest.approx(2 * a, rel=5e-3)
    assert f.minor == pytest.approx(2 * b, rel=5e-3)
    assert (f.centroid_x, f.centroid_y) == pytest.approx((100, 80), abs=1e-9)
    # skimage: angle between the row axis and the major axis; here the major axis is at
    # `angle` from the column axis towards the rows
    expected = np.angle(np.exp(2j * (np.pi / 2 - angle))) / 2
    assert np.angle(np.exp(2j * (f.orientation - expected))) == pytest.approx(0, abs=1e-6)
    assert f.solidity == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_polygon_features_match_regionprops_of_the_rasterised_mask(seed):
    rng = np.random.default_rng(seed)
    outline = lobed_outline(rng, aspect=1.8, irregularity=0.1, bend=0.2)
    poly = place(
        outline,
        major=150,
        s_major=0.9,
        s_minor=0.8,
        angle=rng.uniform(-3, 3),
        center=(160.3, 120.7),
    )
    mask = rasterize(poly, (240, 320))
    rr, cc = draw_polygon(poly[:, 1], poly[:, 0], mask.shape)
    reference = np.zeros(mask.shape, bool)
    reference[rr, cc] = True
    assert np.count_nonzero(mask ^ reference) <= 0.002 * reference.sum()
    f = polygon_features(poly)
    (r,) = regionprops(mask.astype(np.uint8))
    assert r.area == pytest.approx(f.area, rel=0.01)
    assert r.axis_major_length == pytest.approx(f.major, rel=0.01)
    assert r.axis_minor_length == pytest.approx(f.minor, rel=0.01)
    assert r.orientation == pytest.approx(f.orientation, abs=0.02)
    assert r.centroid == pytest.approx((f.centroid_y, f.centroid_x), abs=0.1)
    assert r.solidity == pytest.approx(f.solidity, abs=0.03)


def test_lobed_outline_is_in_its_principal_frame_and_not_an_ellipse():
    outline = lobed_outline(np.random.default_rng(5), aspect=1.7, irregularity=0.1, bend=0.2)
    f = polygon_features(outline)
    assert f.major == pytest.approx(1.0)
    assert abs(f.orientation) == pytest.approx(np.pi / 2, abs=1e-9)  # major along columns
    ellipse_area = np.pi / 4 * f.major * f.minor
    assert abs(f.area - ellipse_area) > 1e-3 * ellipse_area
    assert f.solidity < 0.999


# --- phantoms and their truth ---------------------------------------------------------------


def test_phantom_truth_follows_the_law():
    preset = small_preset("typical", duration_s=4.0, fps=20.0)
    ph = make_phantom(
        preset,
        seed=7,
        hr_bpm=120.0,
        hrv_cv=0.0,
        hr_drift=0.0,
        ef_pct=40.0,
        ef_beat_cv=0.0,
        drift_px_s=3.0,
        jerk_rate_hz=1.0,
    )
    beats, frames = ph.beat_table(), ph.frame_table()
    assert tuple(beats.columns) == BEAT_COLUMNS
    assert tuple(frames.columns) == FRAME_COLUMNS
    assert len(beats) >= 6
    np.testing.assert_allclose(beats["rr_s"].iloc[:-1], 0.5, rtol=1e-9)
    assert np.isnan(beats["rr_s"].iloc[-1])
    np.testing.assert_allclose(beats["hr_bpm"].iloc[:-1], 120.0, rtol=1e-9)
    np.testing.assert_allclose(beats["ef_pct"], 40.0, rtol=1e-6)
    np.testing.assert_allclose(
        beats["ef_pct"], 100 * (beats["edv_pl"] - beats["esv_pl"]) / beats["edv_pl"]
    )
    law = ph.law
    inside = (law.ed_times_s[:-1] >= 0) & (law.es_times_s <= (ph.n_frames - 1) / ph.fps)
    np.testing.assert_allclose(beats["ed_time_s"], law.ed_times_s[:-1][inside])
    np.testing.assert_allclose(beats["es_time_s"], law.es_times_s[inside])
    np.testing.assert_array_equal(beats["ed_frame"], np.rint(beats["ed_time_s"] * ph.fps))
    # frame volumes follow the law's axis scales, whatever the animal's motion
    s_major, s_minor = law.axis_scales(frames["time_s"].to_numpy())
    np.testing.assert_allclose(
        frames["volume_pl"], beats["edv_pl"].iloc[0] * s_major * s_minor**2, rtol=1e-9
    )
    assert frames["volume_pl"].max() <= beats["edv_pl"].max() * (1 + 1e-12)
    assert frames["volume_pl"].min() >= beats["esv_pl"].min() * (1 - 1e-12)
    assert (frames["n_components"] == 1).all()


def test_phantom_ef_equals_the_laws_ef_per_beat():
    ph = make_phantom(small_preset("hard"), seed=11, ef_beat_cv=0.1)
    beats = ph.beat_table()
    inside = (ph.law.ed_times_s[:-1] >= 0) & (ph.law.es_times_s <= (ph.n_frames - 1) / ph.fps)
    np.testing.assert_allclose(beats["ef_pct"], 100 * ph.law.ef[inside], rtol=1e-9)


@pytest.mark.parametrize("name", ["typical", "hts"])
def test_masks_agree_with_the_frame_truth(name):
    ph = make_phantom(small_preset(name), seed=3)
    frames = ph.frame_table()
    px = ph.pixel_size_um
    for i in (0, ph.n_frames // 2):
        (r,) = regionprops(ph.mask(i).astype(np.uint8), spacing=(px, px))
        assert r.area == pytest.approx(frames["area_um2"][i], rel=0.03)
        assert r.axis_major_length == pytest.approx(frames["major_um"][i], rel=0.03)
        assert r.centroid[1] == pytest.approx(frames["centroid_x_um"][i], abs=0.5 * px)


@pytest.mark.parametrize("name", ["typical", "hard", "hts"])
def test_phantoms_are_deterministic_for_a_seed(name):
    preset = small_preset(name)
    a, b, c = (make_phantom(preset, seed=s) for s in (5, 5, 6))
    assert a.params == b.params
    np.testing.assert_array_equal(a.image(3), b.image(3))
    np.testing.assert_array_equal(a.mask(3), b.mask(3))
    pd.testing.assert_frame_equal(a.beat_table(), b.beat_table())
    assert not np.array_equal(a.image(3), c.image(3))
    expected = (128, 128) if name == "hts" else (120, 160, 3)
    assert a.image(0).shape == expected
    assert a.image(0).dtype == (np.uint16 if name == "hts" else np.uint8)


def test_presets_load_and_sample_within_their_ranges(tmp_path):
    assert {"clean", "typical", "hard", "hts"} <= set(preset_names())
    for name in preset_names():
        preset = load_preset(name)
        params = sample_params(preset, np.random.default_rng(0))
        assert preset.hr_bpm[0] <= params.hr_bpm <= preset.hr_bpm[1]
        assert preset.ef_pct[0] <= params.ef_pct <= preset.ef_pct[1]
    user = tmp_path / "mine.toml"
    user.write_text('base = "clean"\nsetting = "stereo"\n[heart]\nhr_bpm = 100\n')
    preset = load_preset(user)
    assert preset.name == "mine"
    assert preset.hr_bpm == (100.0, 100.0)
    assert preset.hrv_cv == load_preset("clean").hrv_cv
    user.write_text('base = "typical"\n[heart]\nheart_rate = 100\n')
    with pytest.raises(ValueError, match="heart_rate"):
        load_preset(user)
    with pytest.raises(ValueError, match="unknown phantom preset"):
        load_preset("no_such_preset")


def test_training_pairs_are_reproducible_and_masked():
    preset = small_preset("typical")
    data = TrainingPairs(6, seed=1, preset=preset, frames_per_scene=3)
    image, mask = data[4]
    again, again_mask = TrainingPairs(6, seed=1, preset=preset, frames_per_scene=3)[4]
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(mask, again_mask)
    assert image.shape == (120, 160, 3)
    assert mask.shape == (120, 160)
    assert mask.any()
    stream = iter_training_pairs(seed=2, preset=[preset, small_preset("hts")], frames_per_scene=2)
    for _ in range(4):
        image, mask = next(stream)
        assert image.shape[:2] == mask.shape
        assert mask.dtype == bool
        assert mask.any()


# --- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "tiff"), [("typical", True), ("hts", False)])
def test_write_synth_set_files_read_back(tmp_path, name, tiff):
    preset = small_preset(name)
    paths = write_synth_set(tmp_path, 1, 3, preset, tiff=tiff, progress=False)
    stem = f"{preset.name}_s3_000"
    assert paths == [tmp_path / f"{stem}.avi"]
    truth = tmp_path / f"{stem}.truth"
    meta = json.loads((truth / "meta.json").read_text())
    fps, n = meta["fps"], meta["n_frames"]
    assert meta["preset"] == name
    assert meta["set_seed"] == 3

    cap = cv2.VideoCapture(str(paths[0]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(fps, rel=1e-3)
    ok, first = cap.read()
    cap.release()
    assert ok
    assert first.shape[:2] == tuple(meta["frame_shape"])

    with tifffile.TiffFile(truth / "masks.tif") as tif:
        masks = tif.asarray()
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert masks.shape == (n, *meta["frame_shape"])
    assert set(np.unique(masks)) <= {0, 255}
    ph = make_phantom(preset, seed=meta["seed"])
    np.testing.assert_array_equal(masks[2] > 0, ph.mask(2))

    with tifffile.TiffFile(tmp_path / f"{stem}.tif") as tif:
        frames = tif.asarray()
        described = tif.shaped_metadata[0]
    assert described["fps"] == pytest.approx(fps)
    assert described["pixel_size_um"] == pytest.approx(meta["pixel_size_um"])
    assert frames.dtype == (np.uint16 if name == "hts" else np.uint8)
    assert len(frames) == n
    np.testing.assert_array_equal(frames[2], ph.image(2))

    frames_csv = pd.read_csv(truth / "frames.csv")
    beats_csv = pd.read_csv(truth / "beats.csv")
    assert tuple(frames_csv.columns) == FRAME_COLUMNS
    assert len(frames_csv) == n
    assert tuple(beats_csv.columns) == BEAT_COLUMNS
    np.testing.assert_allclose(frames_csv["area_um2"], ph.frame_table()["area_um2"], rtol=1e-8)
    assert not list(tmp_path.rglob(".*partial*"))


def test_written_sets_are_byte_identical_for_a_seed(tmp_path):
    preset = small_preset("typical", duration_s=0.5)
    a = write_synth_set(tmp_path / "a", 1, 9, preset, progress=False)[0]
    b = write_synth_set(tmp_path / "b", 1, 9, preset, progress=False)[0]
    c = write_synth_set(tmp_path / "c", 1, 10, preset, progress=False)[0]
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    for name in ("masks.tif", "frames.csv", "beats.csv", "meta.json"):
        first = (a.with_suffix(".truth") / name).read_bytes()
        assert first == (b.with_suffix(".truth") / name).read_bytes()


def test_frame_sizes_are_even_so_the_video_matches_its_truth(tmp_path):
    """MJPEG crops odd frame sizes; the generator only draws even ones (865 -> 864)."""
    import cv2
    import tifffile

    from medaka_heart.phantom import write_synth_set
    from medaka_heart.phantom.presets import load_preset, sample_params

    preset = load_preset("hts")
    params = sample_params(preset, np.random.default_rng(0), size_px=865, duration_s=1.0)
    assert params.size_px == 864
    odd = dataclasses.replace(preset, size_px=(401.0, 401.0), duration_s=(1.0, 1.0))
    (video,) = write_synth_set(tmp_path, 1, 3, odd, progress=False)
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    masks = tifffile.imread(video.with_suffix(".truth") / "masks.tif")
    assert ok
    assert frame.shape[:2] == masks.shape[1:3]
