"""phantom/repaint.py: scenes re-made the way real-outline test videos are made."""

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from medaka_heart.phantom.repaint import (
    ellipse_frame,
    fill_outline,
    grain_and_flatten,
    repaint_scene,
)

SHAPE = (90, 120)
BACK, HEART = 60, 200


def _disk(centre, radius):
    mask = np.zeros(SHAPE, bool)
    mask[disk(centre, radius, shape=SHAPE)] = True
    return mask


def test_ellipse_frame_gives_centroid_and_axes_of_a_drawn_ellipse():
    mask = np.zeros(SHAPE, bool)
    mask[ellipse(40, 70, 10, 30, shape=SHAPE)] = True  # rows 10, columns 30 (semi-axes)
    centre, axes = ellipse_frame(mask)
    np.testing.assert_allclose(centre, (70, 40), atol=0.1)
    lengths = np.sort(np.linalg.norm(axes, axis=0))
    np.testing.assert_allclose(lengths, (10 / 2, 30 / 2), rtol=0.05)  # sd of a filled ellipse


def test_fill_outline_paints_the_ventricle_into_the_target_outline():
    image = np.full(SHAPE, 220, np.uint8)
    source = _disk((45, 40), 15)
    image[source] = 40
    target = np.zeros_like(source)
    target[ellipse(50, 75, 12, 25)] = True  # elsewhere, another shape
    frame = fill_outline(image, np.full_like(image, 220), source, target)
    dark = frame < 130
    assert 2 * (dark & target).sum() / (dark.sum() + target.sum()) > 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_place_a_contracting_ventricle_leaves_is_background(seed):
    radii = [22, 16, 12, 16]
    masks = np.stack([_disk((45, 60), r) for r in radii])
    frames = np.stack([np.where(m, HEART, BACK).astype(np.uint8) for m in masks])
    out = repaint_scene(frames, masks, np.random.default_rng(seed), grain=(0, 0), flatten=(0, 0))
    assert out.shape == frames.shape and out.dtype == frames.dtype
    inner = [_disk((45, 60), r - 2) for r in radii]
    for t, r in enumerate(radii):
        left = _disk((45, 60), 20) & ~_disk((45, 60), r + 2)  # inside the largest, outside this
        assert out[t][inner[t]].mean() == pytest.approx(HEART, abs=12)
        if left.any():
            assert out[t][left].mean() == pytest.approx(BACK, abs=12)
    far = np.ones(SHAPE, bool)
    far[20:71, 35:86] = False
    np.testing.assert_allclose(out[:, far].mean(axis=1), BACK, atol=2)


def test_sixteen_bit_scenes_keep_dtype_and_empty_outlines_are_background():
    masks = np.stack([_disk((45, 60), 15), np.zeros(SHAPE, bool)])
    frames = np.stack([np.where(masks[0], 40000, 9000)] * 2).astype(np.uint16)
    out = repaint_scene(frames, masks, np.random.default_rng(0), grain=(0, 0), flatten=(0, 0))
    assert out.dtype == np.uint16
    assert out[1][_disk((45, 60), 10)].mean() == pytest.approx(9000, rel=0.05)
    assert out[0][_disk((45, 60), 10)].mean() == pytest.approx(40000, rel=0.05)


def test_a_scene_without_any_outline_is_returned_as_it_is():
    frames = np.full((3, *SHAPE), 7, np.uint8)
    out = repaint_scene(frames, np.zeros((3, *SHAPE), bool), np.random.default_rng(0))
    np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize("flatten", [0.0, 0.5, 1.0])
def test_grain_and_flatten_remove_the_asked_share_of_contrast_and_add_grain(flatten):
    outline = _disk((45, 60), 15)
    image = np.where(outline, HEART, BACK).astype(np.uint8)
    out = grain_and_flatten(image, outline, np.random.default_rng(0), amplitude=0.1,
                            grain_px=1.0, flatten=flatten)
    far = ~_disk((45, 60), 20)
    np.testing.assert_array_equal(out[far], BACK)  # only the ventricle changes
    expected = HEART - flatten * (HEART - BACK)
    assert out[outline].mean() == pytest.approx(expected, abs=3)
    assert out[outline].std() == pytest.approx(0.1 * (HEART - BACK), rel=0.2)
