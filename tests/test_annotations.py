"""Every annotation layout `adapt` reads: write one with the tool users have, read it back."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import roifile
import tifffile
from matplotlib.path import Path as Polygon

from medaka_heart.io.annotations import read_annotations
from medaka_heart.io.corrections import read_corrections, write_corrections

H, W = 40, 56
OUTLINE = np.array([[10.0, 8.0], [30.5, 6.0], [44.0, 20.0], [28.0, 33.5], [12.0, 27.0]])  # x, y


def frames(n: int = 6) -> np.ndarray:
    """(n, H, W) uint8 frames, each different (frame i has value 10 * i + a ramp)."""
    ramp = np.arange(W, dtype=np.uint8)[None, :].repeat(H, axis=0)
    return np.stack([ramp + 10 * i for i in range(n)]).astype(np.uint8)


def disk(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def imagej_fill(outline: np.ndarray) -> np.ndarray:
    """Pixels whose centre (x + 0.5, y + 0.5) is inside the polygon: ImageJ's rule, computed by
    matplotlib, independently of the reader."""
    yy, xx = np.mgrid[0:H, 0:W]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    return Polygon(outline).contains_points(centres).reshape(H, W)


def test_x_and_x_mask_pairs_in_subfolders_are_recordings(tmp_path):
    for rec, shift in (("fish1", 0), ("fish2", 9)):
        folder = tmp_path / rec
        folder.mkdir()
        for i in (3, 7):
            mask = disk(20 + shift, 18, 5 + i)
            cv2.imwrite(str(folder / f"frame_{i:03d}.png"), frames()[i % 6])
            cv2.imwrite(str(folder / f"frame_{i:03d}_mask.png"), mask.astype(np.uint8) * 7)
    found = read_annotations(tmp_path)
    assert [r.name for r in found] == ["fish1/frame", "fish2/frame"]
    assert found[1].frames == (3, 7)
    np.testing.assert_array_equal(found[1].masks[1], disk(29, 18, 12))  # value 7 is ventricle
    np.testing.assert_array_equal(found[0].images[0], frames()[3])


def test_images_and_masks_folders(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = disk(30, 20, 8)
    cv2.imwrite(str(tmp_path / "images" / "a_01.tif"), frames()[1])
    cv2.imwrite(str(tmp_path / "masks" / "a_01_mask.tif"), mask.astype(np.uint8) * 255)
    (rec,) = read_annotations(tmp_path)
    assert rec.layout == "pairs"
    np.testing.assert_array_equal(rec.masks[0], mask)


def test_heartseg_layout(tmp_path):
    images = tmp_path / "train_images" / "fishA_sample_gray"
    masks = tmp_path / "train_images" / "fishA_mask"
    images.mkdir(parents=True)
    masks.mkdir()
    mask = disk(25, 22, 9)
    cv2.imwrite(str(images / "0012.tif"), frames()[2])
    rgb = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)
    tifffile.imwrite(masks / "0012_mask.tif", rgb, compression="lzw")
    (rec,) = read_annotations(tmp_path)
    assert (rec.name, rec.layout, rec.frames) == ("train_images/fishA", "heartseg", (12,))
    np.testing.assert_array_equal(rec.masks[0], mask)


def test_napari_labels_tiff_beside_a_tiff_stack(tmp_path):
    video = frames()
    tifffile.imwrite(tmp_path / "well_A01.tif", video)
    labels = np.zeros((6, H, W), np.uint16)
    labels[2][disk(20, 20, 6)] = 1
    labels[5][disk(30, 15, 4)] = 3  # any label value is ventricle
    tifffile.imwrite(tmp_path / "well_A01_labels.tif", labels)
    (rec,) = read_annotations(tmp_path)
    assert (rec.name, rec.layout, rec.frames) == ("well_A01", "napari labels", (2, 5))
    np.testing.assert_array_equal(rec.masks[1], disk(30, 15, 4))
    np.testing.assert_array_equal(rec.images[0], video[2])  # the annotated frame, not frame 0


def test_imagej_roi_zip_fills_like_imagej_and_keeps_frames(tmp_path):
    tifffile.imwrite(tmp_path / "fish.tif", frames())
    rois = [roifile.ImagejRoi.frompoints(OUTLINE, t=4),
            roifile.ImagejRoi.frompoints(OUTLINE + np.array([2.0, 1.0]), t=1)]
    roifile.roiwrite(tmp_path / "fish_RoiSet.zip", rois)
    (rec,) = read_annotations(tmp_path)
    assert (rec.layout, rec.frames) == ("imagej rois", (1, 4))
    np.testing.assert_array_equal(rec.masks[1], imagej_fill(OUTLINE))
    np.testing.assert_array_equal(rec.masks[0], imagej_fill(OUTLINE + np.array([2.0, 1.0])))
    np.testing.assert_array_equal(rec.images[1], frames()[4])


def test_a_single_roi_file_can_be_given_directly(tmp_path):
    cv2.imwrite(str(tmp_path / "still.png"), frames()[0])
    roifile.ImagejRoi.frompoints(OUTLINE).tofile(tmp_path / "still.roi")
    (rec,) = read_annotations(tmp_path / "still.roi")
    assert rec.frames == (0,)
    np.testing.assert_array_equal(rec.masks[0], imagej_fill(OUTLINE))


def test_fiji_rois_and_napari_labels_of_one_outline_train_on_the_same_mask(tmp_path):
    a, b = tmp_path / "fiji", tmp_path / "napari"
    a.mkdir()
    b.mkdir()
    for folder in (a, b):
        tifffile.imwrite(folder / "rec.tif", frames())
    roifile.roiwrite(a / "rec.zip", [roifile.ImagejRoi.frompoints(OUTLINE, t=3)])
    labels = np.zeros((6, H, W), np.uint8)
    labels[3] = imagej_fill(OUTLINE)  # what napari's polygon-to-labels paints for this outline
    tifffile.imwrite(b / "rec_labels.tif", labels)
    (fiji,), (napari,) = read_annotations(a), read_annotations(b)
    assert fiji.frames == napari.frames == (3,)
    np.testing.assert_array_equal(fiji.masks[0], napari.masks[0])
    assert fiji.masks[0].sum() > 300


def _result_folder(tmp_path, n=6):
    video = tmp_path / "fish.tif"
    tifffile.imwrite(video, frames(n))
    result = tmp_path / "out" / "fish"
    result.mkdir(parents=True)
    (result / "provenance.json").write_text(json.dumps({"input": str(video)}))
    tifffile.imwrite(result / "masks.tif", np.stack([disk(20, 20, 5)] * n).astype(np.uint8) * 255)
    return result


def test_corrections_written_by_the_plugin_are_read_back(tmp_path):
    result = _result_folder(tmp_path)
    fixed = {1: disk(25, 20, 9), 4: disk(10, 10, 3)}
    write_corrections(result, fixed)
    back = read_corrections(result)
    assert sorted(back) == [1, 4]
    np.testing.assert_array_equal(back[4], fixed[4])
    (rec,) = read_annotations(tmp_path / "out")
    assert (rec.name, rec.layout, rec.frames) == ("fish", "result", (1, 4))
    np.testing.assert_array_equal(rec.images[1], frames()[4])


def test_masks_tif_edited_in_place_with_a_list_of_frames(tmp_path):
    result = _result_folder(tmp_path)
    stack = np.stack([disk(20, 20, 5)] * 6).astype(np.uint8) * 255
    stack[2] = disk(30, 25, 7) * 255
    tifffile.imwrite(result / "masks.tif", stack)
    (result / "corrected_frames.txt").write_text("# fixed in Fiji\n2, 0\n")
    (rec,) = read_annotations(result)
    assert rec.frames == (0, 2)
    np.testing.assert_array_equal(rec.masks[1], disk(30, 25, 7))


@pytest.mark.parametrize(("setup", "message"), [
    ("nothing", "no annotated frames found"),
    ("labels_alone", "no video or image"),
    ("wrong_size", "mask is"),
    ("late_frame", "past its 6 frame"),
    ("bad_list", "is not a frame index"),
])
def test_bad_annotations_name_the_file_and_the_problem(tmp_path, setup, message):
    if setup == "nothing":
        (tmp_path / "notes.txt").write_text("hello")
    elif setup == "labels_alone":
        tifffile.imwrite(tmp_path / "x_labels.tif", np.ones((2, H, W), np.uint8))
    elif setup == "wrong_size":
        cv2.imwrite(str(tmp_path / "a.png"), frames()[0])
        cv2.imwrite(str(tmp_path / "a_mask.png"), np.ones((H + 1, W), np.uint8))
    elif setup == "late_frame":
        tifffile.imwrite(tmp_path / "v.tif", frames())
        roifile.roiwrite(tmp_path / "v.zip", [roifile.ImagejRoi.frompoints(OUTLINE, t=9)])
    else:
        result = _result_folder(tmp_path)
        (result / "corrected_frames.txt").write_text("1\nthree\n")
    with pytest.raises(ValueError, match=message):
        read_annotations(tmp_path)
