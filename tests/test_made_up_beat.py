"""model/made_up_beat.py: one annotated frame made into one beat of a contracting ventricle."""

import numpy as np
import pytest
from skimage.draw import disk

from medaka_heart.model.made_up_beat import beating_scale, made_up_beat

CENTRE = (44, 36)  # (x, y) px of the ventricle, off the frame's centre


def _frame(dtype=np.uint8, channels=None):
    mask = np.zeros((96, 128), bool)
    mask[disk(CENTRE[::-1], 16)] = True
    rng = np.random.default_rng(0)
    image = (np.where(mask, 60, 180) + rng.normal(0, 5, mask.shape)).clip(0, 255).astype(dtype)
    if channels is not None:
        image = np.repeat(image[..., None], channels, axis=-1)
    return image, mask


def test_beating_scale_is_one_at_diastole_and_shortened_at_systole():
    scales = beating_scale(8, 8.0, 60.0, 0.2)  # one beat in 8 frames
    assert scales[0] == pytest.approx(1.0)
    assert scales[4] == pytest.approx(0.8)
    assert scales.min() == pytest.approx(0.8)


@pytest.mark.parametrize(("shortening", "dtype", "channels"),
                         [(0.1, np.uint8, None), (0.2, np.uint8, None), (0.2, np.uint16, None),
                          (0.2, np.float32, None), (0.2, np.int32, None), (0.2, np.uint8, 3),
                          (0.2, np.uint8, 1)])
def test_the_ventricle_contracts_about_its_centroid(shortening, dtype, channels):
    image, mask = _frame(dtype, channels)
    frames, masks = made_up_beat(image, mask, n_frames=8, shortening=shortening)
    assert frames.shape == (8, *image.shape)
    assert frames.dtype == image.dtype
    np.testing.assert_array_equal(frames[0], image)  # the annotated frame itself
    np.testing.assert_array_equal(masks[0], mask)
    areas = masks.sum(axis=(1, 2))
    assert areas[0] > areas[2] > areas[4] < areas[6] < areas[0]  # systole in the middle
    # the warp fades out around the ventricle, so its rim shortens a little less
    assert (1 - shortening) ** 2 - 0.03 < areas[4] / areas[0] < 1 - shortening
    ys, xs = np.nonzero(masks[4])
    assert (xs.mean(), ys.mean()) == pytest.approx(CENTRE, abs=0.5)
    gray = frames[4] if channels is None else frames[4].mean(axis=-1)
    dark = gray < 120  # the image moves with its mask
    assert 2 * (dark & masks[4]).sum() / (dark.sum() + masks[4].sum()) > 0.95


def test_an_empty_mask_gives_the_frame_repeated():
    image, mask = _frame()
    frames, masks = made_up_beat(image, np.zeros_like(mask), n_frames=5)
    assert frames.shape == (5, *image.shape)
    assert (frames == image).all()
    assert not masks.any()


def test_a_mask_with_channels_is_the_ventricle_where_any_channel_is_nonzero():
    image, mask = _frame()
    _, plain = made_up_beat(image, mask)
    _, rgb = made_up_beat(image, np.repeat(mask[..., None] * 255, 3, axis=-1).astype(np.uint8))
    np.testing.assert_array_equal(rgb, plain)
