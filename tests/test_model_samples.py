"""Training samples mimic the segmenter's coarse and fine passes and stay aligned."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import ellipse

from medaka_heart.model.augment import AugmentConfig
from medaka_heart.model.inputs import motion_image, network_input
from medaka_heart.model.samples import (
    ViewSpec,
    coarse_sample,
    fine_sample,
    make_views,
    mask_box,
    scene_motion,
)
from medaka_heart.preprocess import crop_square

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
    for image, msk in (fine_sample(ctx, xmask, rng, SPEC, augment)[:2],
                       coarse_sample(coarse, cmask, rng, SPEC, augment, p_heart=1.0)[:2]):
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


def _offset_of_heart(mask):
    """Distance of the mask's box centre from the crop centre, in crop sides (inf if empty)."""
    box = mask_box(mask)
    if box is None:
        return np.inf
    return float(np.hypot(box[0] - (mask.shape[1] - 1) / 2, box[1] - (mask.shape[0] - 1) / 2)
                 / mask.shape[0])


def test_off_target_crops_move_the_heart_off_centre_and_keep_it_aligned():
    rgb, mask = _frame()
    _, _, ctx, xmask = make_views(rgb, mask, SPEC)
    centred = [fine_sample(ctx, xmask, np.random.default_rng(s), SPEC, AugmentConfig())
               for s in range(20)]
    off = [fine_sample(ctx, xmask, np.random.default_rng(s), SPEC, AugmentConfig(), 1.0)
           for s in range(20)]
    near = [_offset_of_heart(m) for _, m, _ in centred]  # jitter only
    # 0.5-1.3 box sides off over crops of 1.7-2.8 box sides: the heart sits towards an edge
    far = [_offset_of_heart(m) for _, m, _ in off]
    assert min(far) > np.median(near)
    assert np.median(far) > 2 * np.median(near)
    for image, msk, _ in off:
        if msk.sum() > 10:  # what of the heart the crop holds is still the bright region
            assert image[msk].mean() > image[~msk].mean() + 0.3
    # without augmentation (validation) there is no off-target crop
    a = fine_sample(ctx, xmask, np.random.default_rng(0), SPEC, None, 1.0)
    b = fine_sample(ctx, xmask, np.random.default_rng(0), SPEC, None)
    np.testing.assert_array_equal(a[1], b[1])


def _beating(n=6, h=120, w=200):
    """Frames whose ellipse (the "ventricle") changes size; a static bright distractor."""
    frames, masks = [], []
    for i in range(n):
        rgb, mask = _frame(r=8 + 2 * (i % 3))
        rgb[20:40, 20:50] = (200, 120, 90)  # looks like it but does not move
        frames.append(rgb)
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


def test_motion_image_marks_what_changes_whatever_the_contrast():
    frames, masks = _beating()
    views = [make_views(f, m, SPEC) for f, m in zip(frames, masks, strict=True)]
    coarse = np.stack([v[0] for v in views]).astype(np.float32) / 255.0
    motion = motion_image(coarse)
    assert motion.shape == (64, 64)
    assert motion.max() == 1.0
    assert motion[16:24, 10:20].max() == 0.0  # static distractor
    ring = views[-1][1] & ~views[0][1]  # grew between the first and last frame
    assert motion[ring].mean() > 0.5
    np.testing.assert_allclose(motion_image(0.5 * coarse), motion, atol=1e-5)
    assert not motion_image(coarse[:1]).any()


def test_scene_motion_groups_runs_of_frames():
    frames, masks = _beating(6)
    coarse = np.stack([make_views(f, m, SPEC)[0] for f, m in zip(frames, masks, strict=True)])
    still = np.concatenate([coarse, np.repeat(coarse[:1], 3, axis=0)])
    planes, scene = scene_motion(still, 3)
    assert planes.shape == (3, 64, 64)
    assert planes.dtype == np.uint8
    np.testing.assert_array_equal(scene, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert planes[0].any()
    assert not planes[2].any()  # the last scene does not move
    whole, scene = scene_motion(still, None)
    assert whole.shape == (1, 64, 64)
    assert not scene.any()


@pytest.mark.parametrize("seed", range(4))
def test_coarse_sample_warps_the_motion_plane_with_the_mask(seed):
    """The augmented motion plane stays on the heart: same warp and window as the mask."""
    frames, masks = _beating()
    views = [make_views(f, m, SPEC) for f, m in zip(frames, masks, strict=True)]
    coarse = np.stack([v[0] for v in views])
    motion = scene_motion(coarse, None)[0][0]
    rng = np.random.default_rng(seed)
    _, msk, mot = coarse_sample(views[-1][0], views[-1][1], rng, SPEC, AugmentConfig(),
                                p_heart=1.0, motion=motion)
    assert mot.shape == msk.shape == (32, 32)
    if mot.any():  # a share of samples get a zero plane (still images)
        near = np.zeros_like(msk)
        ys, xs = np.nonzero(msk)
        near[max(ys.min() - 3, 0):ys.max() + 4, max(xs.min() - 3, 0):xs.max() + 4] = True
        assert mot[near].sum() > 0.9 * mot.sum()


def test_network_input_planes():
    images = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    motion = np.full((8, 8), 0.25, np.float32)
    x = network_input(images, 3, 0.0, motion)
    assert x.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(x[:, 0], images)
    assert (x[:, 1] == 0).all()
    assert (x[:, 2] == 0.25).all()
    assert (network_input(images, 3, 1.0)[:, 2] == 0).all()  # no motion: zeros
    assert network_input(images, 2, 1.0, motion).shape == (2, 2, 8, 8)
    beat = np.stack([np.full((2, 8, 8), v, np.float32) for v in (0.5, -0.5)])
    x = network_input(images, 4, 1.0, beat=beat)
    assert x.shape == (2, 4, 8, 8)
    np.testing.assert_array_equal(x[:, 2:], beat)
    assert (x[:, 1] == 1).all()
    assert not network_input(images, 4, 0.0)[:, 2:].any()  # no beat planes: zeros
    with pytest.raises(ValueError, match="in_channels"):
        network_input(images, 5, 0.0)


@pytest.mark.parametrize(("radius", "cluttered"), [(15, True), (4, False)])
def test_coarse_samples_of_large_hearts_only_get_clutter(radius, cluttered):
    from skimage.draw import disk

    view = np.full((64, 64), 60, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[disk((32, 32), radius)] = True
    view[mask] = 200
    still = dict(hflip=False, vflip=False, zoom=0.0, shift=0.0, rotation_rad=0.0, shear=0.0,
                 gamma=0.0, contrast=0.0, brightness=0.0, illumination=0.0, blur_sigma_px=0.0,
                 noise_std=0.0)
    augment = AugmentConfig(**still, texture=0.5, p_texture=1.0, coarse_clutter_min_px=20)
    image, msk, _ = coarse_sample(view, mask, np.random.default_rng(3), SPEC, augment,
                                  p_heart=1.0)
    background = image[~msk]
    assert bool(background.std() > 0.01) == cluttered


def test_recording_box_crops_show_a_small_heart_small():
    """With the recording's (diastolic) box, an end-systolic frame's heart fills less of the
    crop, as in a video's single crop; with its own box it would fill the same share."""
    from dataclasses import replace

    from medaka_heart.model.samples import largest_box_side

    big, big_mask = _frame(r=16, c=28)
    small, small_mask = _frame(r=8, c=14)
    side = largest_box_side([big_mask, small_mask])
    assert side == mask_box(big_mask)[2]
    shares = {}
    for recording in (False, True):
        spec = replace(SPEC, recording_box=recording)
        for name, (frame, mask) in {"ed": (big, big_mask), "es": (small, small_mask)}.items():
            views = make_views(frame, mask, spec, side if recording else None)
            _, crop_mask, _ = fine_sample(views[2], views[3], np.random.default_rng(0), spec,
                                          None)
            shares[recording, name] = crop_mask.mean()
    assert shares[False, "es"] == pytest.approx(shares[False, "ed"], rel=0.15)
    assert shares[True, "es"] == pytest.approx(shares[True, "ed"] / 4, rel=0.2)  # half the side
    assert largest_box_side([np.zeros((4, 4), bool)]) is None
