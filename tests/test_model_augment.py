"""Augmentation keeps image and mask aligned and is reproducible from its seed."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from medaka_heart.model.augment import (
    AugmentConfig,
    augment_pair,
    draw_blobs,
    jitter_motion,
    photometric,
    random_affine,
    tissue_texture,
    warp_pair,
)

NO_PHOTOMETRIC = dict(gamma=0.0, contrast=0.0, brightness=0.0, illumination=0.0,
                      blur_sigma_px=0.0, noise_std=0.0)


def _disk_pair(size=96, centre=(30, 60), radius=14):
    image = np.full((size, size), 0.1, dtype=np.float32)
    mask = np.zeros((size, size), dtype=bool)
    rr, cc = disk(centre, radius, shape=mask.shape)
    image[rr, cc] = 0.9
    mask[rr, cc] = True
    return image, mask


@pytest.mark.parametrize("seed", range(8))
def test_mask_stays_on_the_bright_disk(seed):
    image, mask = _disk_pair()
    # strong ranges so that flips, rotation, shear and zoom all move the disk
    cfg = AugmentConfig(zoom=0.2, shift=0.1, rotation_rad=0.5, shear=0.2, **NO_PHOTOMETRIC)
    img, msk, _ = augment_pair(image, mask, np.random.default_rng(seed), cfg)
    assert msk.dtype == bool
    assert img.dtype == np.float32
    assert msk.sum() > 0.6 * mask.sum()
    bright = img > 0.5
    total = np.count_nonzero(bright) + np.count_nonzero(msk)
    overlap = 2 * np.count_nonzero(bright & msk) / total
    assert overlap > 0.95
    assert not np.array_equal(msk, mask)  # it did move


def test_horizontal_flip_mirrors():
    image, mask = _disk_pair(centre=(30, 20))
    # only a horizontal flip possible: find a seed that applies it
    cfg = AugmentConfig(vflip=False, zoom=0, shift=0, rotation_rad=0, shear=0, **NO_PHOTOMETRIC)
    for seed in range(20):
        img, msk, _ = augment_pair(image, mask, np.random.default_rng(seed), cfg)
        if not np.array_equal(msk, mask):
            np.testing.assert_array_equal(msk, mask[:, ::-1])
            np.testing.assert_allclose(img, image[:, ::-1], atol=1e-6)
            return
    pytest.fail("no seed flipped")


def test_identity_config_is_identity():
    image, mask = _disk_pair()
    cfg = AugmentConfig(hflip=False, vflip=False, zoom=0, shift=0, rotation_rad=0, shear=0,
                        **NO_PHOTOMETRIC)
    matrix = random_affine(np.random.default_rng(0), 96, 96, cfg)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    img, msk, _ = augment_pair(image, mask, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(msk, mask)
    np.testing.assert_allclose(img, image, atol=1e-6)


def test_same_seed_same_result_and_range():
    image, mask = _disk_pair()
    a = augment_pair(image, mask, np.random.default_rng(7))
    b = augment_pair(image, mask, np.random.default_rng(7))
    c = augment_pair(image, mask, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert 0.0 <= a[0].min() <= a[0].max() <= 1.0


def test_warp_pair_uses_one_matrix():
    image, mask = _disk_pair()
    # x -> x + 10, y -> y - 5: output pixel (y, x) shows input pixel (y + 5, x - 10)
    shift = np.array([[1.0, 0, 10], [0, 1.0, -5]])
    img, msk = warp_pair(image, mask, shift)
    np.testing.assert_array_equal(msk[:91, 10:], mask[5:, :86])
    np.testing.assert_allclose(img[:91, 10:], image[5:, :86], atol=1e-6)


def test_photometric_changes_image_only_within_range():
    image, _ = _disk_pair()
    out = photometric(image, np.random.default_rng(3))
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert 0.0 <= out.min() <= out.max() <= 1.0
    assert not np.allclose(out, image)


def test_tissue_texture_is_a_gentle_multiplicative_field():
    field = tissue_texture(np.random.default_rng(3), (128, 128), amplitude=0.25)
    assert field.shape == (128, 128)
    assert field.dtype == np.float32
    assert abs(float(field.mean()) - 1.0) < 0.05
    assert 0.0 < float(field.std()) <= 0.25 * 1.01
    again = tissue_texture(np.random.default_rng(3), (128, 128), amplitude=0.25)
    np.testing.assert_array_equal(field, again)


def test_blobs_stay_within_their_contrast_and_texture_reaches_the_heart():
    image, mask = _disk_pair()
    rng = np.random.default_rng(5)
    blobbed = draw_blobs(image, rng, 4)
    change = blobbed - image
    assert np.abs(change).max() <= 0.3 + 1e-6
    assert np.abs(change).max() > 0.01
    textured = photometric(image, np.random.default_rng(7),
                           AugmentConfig(**NO_PHOTOMETRIC, texture=0.3, p_texture=1.0))
    assert textured[mask].std() > 0.01  # the heart is textured too, not only the background


def test_texture_and_blobs_change_fine_crops_only_when_asked():
    image, _ = _disk_pair()
    plain = photometric(image, np.random.default_rng(11), AugmentConfig(**NO_PHOTOMETRIC))
    np.testing.assert_allclose(plain, image, atol=1e-6)  # off by default
    cluttered = photometric(image, np.random.default_rng(11),
                            AugmentConfig(**NO_PHOTOMETRIC, texture=0.3, blobs=3,
                                          p_texture=1.0, p_blobs=1.0))
    assert np.abs(cluttered - image).max() > 0.01


def test_coarse_views_get_no_clutter_unless_asked():
    image, _ = _disk_pair()
    cfg = AugmentConfig(**NO_PHOTOMETRIC, texture=0.3, blobs=3, p_texture=1.0, p_blobs=1.0)
    coarse = photometric(image, np.random.default_rng(2), cfg, coarse=True)
    np.testing.assert_allclose(coarse, image, atol=1e-6)
    both = AugmentConfig(**NO_PHOTOMETRIC, texture=0.3, blobs=3, p_texture=1.0, p_blobs=1.0,
                         texture_in_coarse=True)
    textured = photometric(image, np.random.default_rng(2), both, coarse=True)
    assert np.abs(textured - image).max() > 0.01


def test_jitter_motion_adds_look_alikes_and_noise_and_keeps_the_range():
    plane = np.zeros((64, 64), np.float32)
    plane[20:30, 20:30] = 1.0  # the beating heart
    off = AugmentConfig(motion_gain=0.0, p_no_motion=0.0)
    np.testing.assert_array_equal(jitter_motion(plane, np.random.default_rng(0), off), plane)
    busy = AugmentConfig(motion_blobs=4, motion_noise=0.3, p_no_motion=0.0,
                         p_motion_clutter=1.0)
    outs = [jitter_motion(plane, np.random.default_rng(s), busy) for s in range(8)]
    for out in outs:
        assert out.dtype == np.float32
        assert out.min() >= 0.0
        assert out.max() <= 1.0
    away = np.ones_like(plane, bool)
    away[15:35, 15:35] = False
    assert np.mean([(o[away] > 0.2).mean() for o in outs]) > 0.02  # motion where no heart is
    assert np.mean([o[20:30, 20:30].mean() for o in outs]) > 0.5  # the heart still moves
    still = AugmentConfig(p_no_motion=1.0)
    assert not jitter_motion(plane, np.random.default_rng(0), still).any()
    a = jitter_motion(plane, np.random.default_rng(3), busy)
    np.testing.assert_array_equal(a, jitter_motion(plane, np.random.default_rng(3), busy))
