"""Training samples mimic the segmenter's coarse and fine passes and stay aligned."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import ellipse

from medaka_heart.model.augment import AugmentConfig
from medaka_heart.model.samples import (
    ViewSpec,
    coarse_sample,
    crop_square,
    fine_sample,
    make_views,
    mask_box,
)

SPEC = ViewSpec(size=32, coarse_size=64, context_size=64)


def _frame(cy=60, cx=150, r=12, c=20, h=120, w=200):
    mask = np.zeros((h, w), bool)
    rr, cc = ellipse(cy, cx, r, c, shape=mask.shape)
    mask[rr, cc] = True
    rgb = np.full((h, w, 3), 40, np.uint8)
    rgb[mask] = (200, 120, 90)
    return rgb, mask


def test_mask_box_and_crop_square():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == (5.5, 3.0, 6.0)
    assert mask_box(np.zeros((3, 3), bool)) is None
    image = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(crop_square(image, 2.0, 2.0, 2), image[1:3, 1:3])
    edge = crop_square(image, 0.0, 0.0, 4)  # half outside: replicated edges
    assert edge.shape == (4, 4)
    np.testing.assert_array_equal(edge[:2, :2], np.full((2, 2), image[0, 0]))
    np.testing.assert_array_equal(edge[2:, 2:], image[:2, :2])


def test_views_are_aligned_and_centred():
    rgb, mask = _frame()
    coarse, cmask, ctx, xmask = make_views(rgb, mask, SPEC)
    assert coarse.shape == (64, 64)
    assert ctx.shape == (64, 64)
    assert coarse.dtype == np.uint8
    assert coarse[cmask].mean() > 200
    assert ctx[xmask].mean() > 200
    cx, cy, side = mask_box(xmask)
    assert abs(cx - 31.5) <= 1
    assert abs(cy - 31.5) <= 1
    assert side == pytest.approx(64 / SPEC.context_scale, abs=2)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("augment", [None, AugmentConfig()])
def test_samples_keep_the_mask_on_the_bright_region(seed, augment):
    rgb, mask = _frame()
    coarse, cmask, ctx, xmask = make_views(rgb, mask, SPEC)
    rng = np.random.default_rng(seed)
    for image, msk in (fine_sample(ctx, xmask, rng, SPEC, augment),
                       coarse_sample(coarse, cmask, rng, SPEC, augment, p_heart=1.0)):
        assert image.shape == (32, 32)
        assert image.dtype == np.float32
        assert msk.any()
        assert image[msk].mean() > image[~msk].mean() + 0.3


def test_fine_crop_without_augmentation_is_deterministic_and_scaled():
    rgb, mask = _frame()
    _, _, ctx, xmask = make_views(rgb, mask, SPEC)
    a = fine_sample(ctx, xmask, np.random.default_rng(0), SPEC, None)
    b = fine_sample(ctx, xmask, np.random.default_rng(1), SPEC, None)
    np.testing.assert_array_equal(a[0], b[0])
    # heart box spans 32 / mean(crop_scale) px of the 32 px crop
    assert mask_box(a[1])[2] == pytest.approx(32 / np.mean(SPEC.crop_scale), abs=1.5)
