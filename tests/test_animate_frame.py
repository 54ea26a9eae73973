"""scripts/animate_frame.py: a still annotated frame becomes a beating video with its masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from skimage.draw import disk


def test_beating_scale_runs_from_diastole_to_systole_at_the_heart_rate(load_script):
    module = load_script("animate_frame")
    scale = module.beating_scale(31, fps=15.0, hr_bpm=60.0, shortening=0.2)
    assert scale[0] == pytest.approx(1.0)
    assert scale[15] == pytest.approx(1.0)  # 15 frames/beat
    assert scale.min() == pytest.approx(0.8, abs=0.01)
    assert int(np.argmin(scale[:15])) in (7, 8)  # systole half-way through the beat


def test_warp_scales_the_followed_region_about_the_centre(load_script):
    module = load_script("animate_frame")
    mask = np.zeros((100, 120), np.float32)
    mask[disk((50, 60), 20)] = 1.0
    follow = np.ones_like(mask)  # everything follows: a plain scaling
    moved = module.warp_about(mask, (60.0, 50.0), follow, 0.5) > 0.5
    ys, xs = np.nonzero(moved)
    assert xs.mean() == pytest.approx(60, abs=0.5)
    assert ys.mean() == pytest.approx(50, abs=0.5)
    assert moved.sum() == pytest.approx(np.pi * 10**2, rel=0.08)  # radius 20 -> 10
    still = module.warp_about(mask, (60.0, 50.0), np.zeros_like(mask), 0.5)
    np.testing.assert_array_equal(still, mask)  # nothing follows: nothing moves


def test_writes_a_video_and_its_masks(tmp_path, load_script):
    module = load_script("animate_frame")
    image = np.full((80, 96, 3), 200, np.uint8)
    rr, cc = disk((40, 48), 15)
    image[rr, cc] = (180, 60, 60)
    mask = np.zeros((80, 96, 3), np.uint8)
    mask[rr, cc] = 255
    tifffile.imwrite(tmp_path / "f.tif", image)
    tifffile.imwrite(tmp_path / "f_mask.tif", mask)
    out = tmp_path / "out"
    assert module.main([str(tmp_path / "f.tif"), str(tmp_path / "f_mask.tif"), "-o", str(out),
                        "--fps", "10", "--hr-bpm", "60", "--seconds", "2",
                        "--shortening", "0.2"]) == 0
    masks = tifffile.imread(out / "f_mask.tif")
    assert masks.shape == (20, 80, 96)
    assert set(np.unique(masks)) == {0, 255}
    area = (masks > 0).sum(axis=(1, 2))
    assert area[0] == pytest.approx(len(rr), rel=0.05)
    assert area[5] == pytest.approx(0.8**2 * len(rr), rel=0.1)  # systole: 0.8 x the radius
    video = cv2.VideoCapture(str(out / "f.avi"))
    n = 0
    while video.read()[0]:
        n += 1
    assert n == 20


def test_a_mask_that_does_not_match_is_refused(tmp_path, load_script):
    module = load_script("animate_frame")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((40, 50), np.uint8))
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((40, 60), np.uint8))
    with pytest.raises(SystemExit, match="does not match"):
        module.main([str(tmp_path / "f.tif"), str(tmp_path / "m.tif"), "-o", str(tmp_path)])


def test_fill_outline_paints_the_ventricle_into_the_target_outline(load_script):
    from skimage.draw import ellipse

    module = load_script("animate_frame")
    image = np.full((90, 120), 220, np.uint8)
    source = np.zeros((90, 120), bool)
    source[disk((45, 40), 15)] = True
    image[source] = 40
    target = np.zeros_like(source)
    target[ellipse(50, 75, 12, 25)] = True  # elsewhere, another shape
    frame = module.fill_outline(image, np.full_like(image, 220), source, target)
    dark = frame < 130
    assert 2 * (dark & target).sum() / (dark.sum() + target.sum()) > 0.95


def test_a_mask_sequence_drives_the_ventricle(tmp_path, load_script):
    module = load_script("animate_frame")
    image = np.full((80, 96, 3), 200, np.uint8)
    rr, cc = disk((40, 48), 12)
    image[rr, cc] = (180, 60, 60)
    mask = np.zeros((80, 96), np.uint8)
    mask[rr, cc] = 255
    tifffile.imwrite(tmp_path / "f.tif", image)
    tifffile.imwrite(tmp_path / "f_mask.tif", mask)
    seq = tmp_path / "seq"
    seq.mkdir()
    radii = [14, 10, 12]
    for i, r in enumerate(radii):
        outline = np.zeros((80, 96, 3), np.uint8)
        outline[disk((20, 20), r)] = 255  # off-centre: moved onto the frame's ventricle
        tifffile.imwrite(seq / f"{i:04d}_mask.tif", outline)
    out = tmp_path / "out"
    assert module.main([str(tmp_path / "f.tif"), str(tmp_path / "f_mask.tif"), "-o", str(out),
                        "--fps", "10", "--seconds", "0.7", "--mask-sequence", str(seq)]) == 0
    masks = tifffile.imread(out / "f_mask.tif") > 0
    assert masks.shape == (7, 80, 96)
    areas = masks.sum(axis=(1, 2))
    expected = [np.pi * radii[i % 3] ** 2 for i in range(7)]  # looped
    np.testing.assert_allclose(areas, expected, rtol=0.1)
    _, ys, xs = np.nonzero(masks)
    assert xs.mean() == pytest.approx(48, abs=1)
    assert ys.mean() == pytest.approx(40, abs=1)
    video = cv2.VideoCapture(str(out / "f.avi"))
    ok, first = video.read()
    assert ok
    red = (first[..., 2].astype(int) - first[..., 1]) > 60  # BGR: the ventricle is red
    assert 2 * (red & masks[0]).sum() / (red.sum() + masks[0].sum()) > 0.9


def test_an_empty_mask_sequence_folder_is_refused(tmp_path, load_script):
    module = load_script("animate_frame")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((40, 50), np.uint8))
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:20] = 255
    tifffile.imwrite(tmp_path / "m.tif", mask)
    (tmp_path / "seq").mkdir()
    with pytest.raises(SystemExit, match=r"no \*_mask\.tif"):
        module.main([str(tmp_path / "f.tif"), str(tmp_path / "m.tif"), "-o",
                     str(tmp_path / "o"), "--mask-sequence", str(tmp_path / "seq")])
