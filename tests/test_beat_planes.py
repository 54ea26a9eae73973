"""Beat planes: what changes over a chunk, built the same way in training and at inference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage.draw import ellipse

from medaka_heart.model.augment import AugmentConfig, augment_pair, jitter_beat
from medaka_heart.model.data import (
    FramePool,
    SequenceData,
    cached,
    generate_scene_sequence,
    toy_scenes,
)
from medaka_heart.model.inputs import (
    DEVIATION_RANGE,
    beat_planes,
    network_input,
    temporal_median,
)
from medaka_heart.model.samples import ViewSpec, fine_sample, mask_box, scene_views

torch.set_num_threads(1)
SPEC = ViewSpec(size=32, coarse_size=64, context_size=64)


def _beating_disk(n=10, size=48, inside=0.8, outside=0.3):
    """(frames (n, size, size) in [0, 1], masks): a disk whose radius goes 6 -> 12 -> 6 px."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames, masks = [], []
    for t in range(n):
        radius = 9 - 3 * np.cos(2 * np.pi * t / n)
        mask = np.hypot(yy - size / 2, xx - size / 2) < radius
        frames.append(np.where(mask, inside, outside).astype(np.float32))
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


@pytest.mark.parametrize("shape", [(7, 5, 6), (8, 5, 6), (1, 4, 4), (6, 3, 4, 2)])
def test_temporal_median_is_the_median_over_time(shape):
    frames = np.random.default_rng(len(shape)).random(shape, dtype=np.float32)
    found = temporal_median(frames)
    assert found.shape == shape[1:]
    assert found.dtype == np.float32
    np.testing.assert_array_equal(found, np.median(frames, axis=0))


def test_beat_planes_mark_what_changes_whatever_the_contrast():
    frames, masks = _beating_disk()
    planes = beat_planes(frames)
    assert planes.shape == (10, 2, 48, 48)
    ring = masks.any(axis=0) & ~masks.all(axis=0)  # filled in some frames, not in others
    std = planes[0, 0]
    assert std[ring].mean() > 0.5
    assert std[~ring].max() < 1e-5  # nothing else changes
    assert (planes[:, 0] == std).all()  # one std plane for the chunk
    assert 0 <= planes[:, 0].min()
    assert planes[:, 0].max() <= 1
    assert -1 <= planes[:, 1].min()
    assert planes[:, 1].max() <= 1
    # end-diastole (largest disk, t = n/2): the ring is fuller than the median, so it deviates
    # with the sign of inside - outside; the same frames darker and dimmer give the same planes
    ed = int(np.argmax(masks.sum(axis=(1, 2))))
    assert planes[ed, 1][ring].mean() > 0.1
    np.testing.assert_allclose(beat_planes(0.5 * frames + 0.1), planes, atol=1e-5)
    inverted = beat_planes(1.0 - frames)
    np.testing.assert_allclose(inverted[:, 0], planes[:, 0], atol=1e-5)
    np.testing.assert_allclose(inverted[:, 1], -planes[:, 1], atol=1e-5)
    # in units of the strongest change: a deviation of one std unit is 1 / DEVIATION_RANGE
    assert np.abs(planes[:, 1]).max() <= 1.0
    assert DEVIATION_RANGE > 1


@pytest.mark.parametrize("count", [1, 2])
def test_stills_and_unchanging_frames_give_zero_planes(count):
    frames, _ = _beating_disk()
    assert not beat_planes(frames[:count]).any()
    assert not beat_planes(np.repeat(frames[:1], 8, axis=0)).any()


def _scene(n=12, h=90, w=120, seed=0):
    """A textured still background with a beating bright ellipse; (frames uint8, masks)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(30, 90, size=(h, w)).astype(np.uint8)
    frames, masks = [], []
    for t in range(n):
        mask = np.zeros((h, w), bool)
        scale = 1.0 - 0.35 * (0.5 - 0.5 * np.cos(2 * np.pi * t / n))
        rr, cc = ellipse(50, 70, 14 * scale, 20 * scale, shape=mask.shape)
        mask[rr, cc] = True
        frame = background.copy()
        frame[mask] = 200
        frames.append(frame)
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


def test_scene_views_share_one_crop_and_keep_the_scene_statistics():
    frames, masks = _scene()
    picked = np.array([0, 6])  # the largest and the smallest heart
    views, stats = scene_views(frames, masks, picked, SPEC)
    assert len(views) == 2
    assert stats.shape == (2, 64, 64)
    assert stats.dtype == np.float16
    ed_ctx, es_ctx = views[0][2].astype(float), views[1][2].astype(float)
    # one crop for the scene: the still background is where it was, the heart shrinks in it
    still = ~(views[0][3] | views[1][3])
    assert np.abs(ed_ctx - es_ctx)[still].mean() < 3
    assert views[1][3].sum() < 0.7 * views[0][3].sum()
    ed_box, es_box = mask_box(views[0][3]), mask_box(views[1][3])
    assert ed_box[0] == pytest.approx(es_box[0], abs=1.5)
    assert ed_box[1] == pytest.approx(es_box[1], abs=1.5)
    # the std is where the heart changes, not on the still texture
    ring = views[0][3] & ~views[1][3]
    std = stats[0].astype(float)
    assert std[ring].mean() > 5 * std[still].mean()


def test_fine_samples_carry_beat_planes_aligned_with_the_image():
    frames, masks = _scene()
    views, stats = scene_views(frames, masks, np.array([0, 6]), SPEC)
    ctx, ctx_mask = views[0][2], views[0][3]
    rng = np.random.default_rng(0)
    image, mask, beat = fine_sample(ctx, ctx_mask, rng, SPEC, None, stats=stats)
    assert beat.shape == (2, 32, 32)
    ring = mask & (image < 0.9)  # the heart's rim in the crop
    assert beat[0][mask].mean() > 3 * beat[0][~mask].mean()
    assert beat[1][mask].mean() > 0  # end-diastole: fuller than the median
    # without the scene's statistics there are no planes, and the crop is the same image
    _image2, _mask2, none = fine_sample(ctx, ctx_mask, rng, SPEC, None)
    assert none is None
    assert ring.any()
    # augmented: the planes move with the image (the bright heart stays where the std is)
    for seed in range(6):
        aug = AugmentConfig(p_no_motion=0.0, motion_gain=0.0)
        _img, msk, planes = fine_sample(ctx, ctx_mask, np.random.default_rng(seed), SPEC, aug,
                                       stats=stats)
        assert planes[0][msk].mean() > 2 * planes[0][~msk].mean()


def test_augment_pair_warps_the_planes_with_the_mask():
    frames, masks = _beating_disk(size=32)
    image, mask = frames[5], masks[5]
    planes = np.stack([mask.astype(np.float32), -mask.astype(np.float32)])
    for seed in range(5):
        _, msk, warped = augment_pair(image, mask, np.random.default_rng(seed),
                                      AugmentConfig(zoom=0.2, rotation_rad=0.5, shift=0.1),
                                      planes)
        assert ((warped[0] > 0.5) == msk).mean() > 0.97
        np.testing.assert_allclose(warped[1], -warped[0], atol=1e-6)
    assert augment_pair(image, mask, np.random.default_rng(0))[2] is None


def test_jitter_beat_keeps_ranges_and_zeroes_stills():
    frames, _ = _beating_disk()
    planes = beat_planes(frames)[3]
    rng = np.random.default_rng(0)
    config = AugmentConfig(motion_blobs=3, motion_noise=0.2, p_motion_clutter=1.0,
                           p_no_motion=0.0, motion_gain=0.5)
    for _ in range(10):
        out = jitter_beat(planes, rng, config)
        assert 0 <= out[0].min()
        assert out[0].max() <= 1
        assert -1 <= out[1].min()
        assert out[1].max() <= 1
        assert not np.array_equal(out, planes)
    assert not jitter_beat(planes, rng, dataclasses.replace(config, p_no_motion=1.0)).any()
    plain = AugmentConfig(p_no_motion=0.0, motion_gain=0.0)
    np.testing.assert_array_equal(jitter_beat(planes, rng, plain), planes)
    flipped = jitter_beat(planes, rng, dataclasses.replace(plain, beat_sign_flip=1.0))
    np.testing.assert_array_equal(flipped[0], planes[0])
    np.testing.assert_array_equal(flipped[1], -planes[1])


def test_scene_pools_keep_each_frame_with_its_scene(tmp_path):
    spec = ViewSpec(size=32, coarse_size=64, context_size=64)
    make = lambda: generate_scene_sequence(toy_scenes(0), 9, 3, spec, "toy", seed=1)  # noqa: E731
    seq = cached(tmp_path, {"k": 1}, make)
    again = cached(tmp_path, {"k": 1}, make)  # read back from the cache
    np.testing.assert_array_equal(seq.stats, again.stats)
    np.testing.assert_array_equal(seq.scene, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert seq.stats.shape == (3, 2, 64, 64)
    pool = FramePool([seq, again])
    assert len(pool.data.stats) == 6
    np.testing.assert_array_equal(pool.data.scene[9:], seq.scene + 3)
    np.testing.assert_array_equal(pool.data.stats_of(12), again.stats[1])  # its frame 3
    plain = SequenceData("plain", seq.coarse, seq.coarse_masks, seq.context, seq.context_masks)
    assert FramePool([seq, plain]).data.stats is None  # not every sequence has its video
    assert plain.stats_of(0) is None
    # a toy scene beats: its frames' statistics mark the heart
    for k in range(3):
        stats = seq.stats[k].astype(float)
        rows = seq.scene == k
        heart = seq.context_masks[rows].any(axis=0)
        assert stats[0][heart].mean() > 2 * stats[0][~heart].mean()


def test_network_input_of_a_fine_crop_with_beat_planes():
    frames, _ = _beating_disk(size=16)
    x = network_input(frames, 4, 1.0, beat=beat_planes(frames))
    assert x.shape == (10, 4, 16, 16)
    np.testing.assert_array_equal(x[:, 2:], beat_planes(frames))
