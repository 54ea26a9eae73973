import numpy as np
import pytest
from skimage.draw import ellipse

from medaka_heart.morphometry import region_features
from medaka_heart.preprocess import (
    normalise_intensity,
    prepare_input,
    resize_stack,
    restore_geometry,
    to_gray,
)


def test_to_gray_weights_and_passthrough():
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 1] = 100
    np.testing.assert_allclose(to_gray(rgb), 58.7, rtol=1e-5)
    gray = np.arange(8, dtype=np.uint16).reshape(2, 2, 2)
    np.testing.assert_array_equal(to_gray(gray), gray)
    with pytest.raises(ValueError, match="grayscale"):
        to_gray(np.zeros((1, 2, 2, 5)))


def test_normalise_is_robust_to_bit_depth_and_outliers():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, (2, 32, 32)).astype(np.float32)
    base[:, 0, 0] = 1000  # a saturated pixel
    as16 = (base * 4000).astype(np.float32)
    a, b = normalise_intensity(base), normalise_intensity(as16)
    assert a.min() == 0
    assert a.max() == 1
    np.testing.assert_allclose(a, b, atol=1e-3)
    nan = base.copy()
    nan[0, 5, 5] = np.nan
    assert np.isfinite(normalise_intensity(nan)).all()


def test_prepare_input_shape_and_range():
    frames = np.random.default_rng(1).integers(0, 65535, (3, 480, 640), dtype=np.uint16)
    x = prepare_input(frames, size=128)
    assert x.shape == (3, 128, 128)
    assert x.dtype == np.float32
    assert 0 <= x.min()
    assert x.max() <= 1


@pytest.mark.parametrize(("h", "w"), [(480, 640), (600, 600), (300, 900)])
def test_anisotropic_resize_round_trip_keeps_axes(h, w):
    """A mask squeezed to the 256x256 network grid and brought back measures as before."""
    mask = np.zeros((h, w), dtype=bool)
    rr, cc = ellipse(h / 2, w / 2, h / 6, w / 5, shape=mask.shape, rotation=0.5)
    mask[rr, cc] = True
    small = resize_stack(mask[None].astype(np.float32), 256, 256)
    back = restore_geometry(small, h, w)[0] >= 0.5
    assert back.shape == (h, w)
    before, after = region_features(mask, 1.0), region_features(back, 1.0)
    for key in ("area_um2", "major_um", "minor_um"):
        assert after[key] == pytest.approx(before[key], rel=0.02)
    assert after["orientation_rad"] == pytest.approx(before["orientation_rad"], abs=0.02)


def test_thumbnails_equal_gray_then_shrink():
    """Shrinking before the grayscale conversion gives the same thumbnails (to rounding)."""
    from medaka_heart.preprocess import thumbnails

    rgb = np.random.default_rng(2).integers(0, 255, (2, 480, 640, 3), dtype=np.uint8)
    expected = resize_stack(to_gray(rgb), 36, 48)
    got = thumbnails(rgb, width=48)
    assert got.shape == (2, 36, 48)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=0.6)


@pytest.mark.parametrize("shape", [(3, 480, 640), (2, 840, 840), (2, 481, 643, 3)])
def test_block_thumbnails_are_the_block_means_of_the_frame_centre(shape):
    from medaka_heart.preprocess import block_thumbnails

    frames = np.random.default_rng(3).integers(0, 4000, shape).astype(np.uint16)
    got = block_thumbnails(frames, 48)
    k = shape[2] // 48
    h, w = shape[1] // k, shape[2] // k
    y0, x0 = (shape[1] - h * k) // 2, (shape[2] - w * k) // 2
    centre = to_gray(frames)[:, y0:y0 + h * k, x0:x0 + w * k]
    expected = centre.reshape(shape[0], h, k, w, k).mean(axis=(2, 4))
    assert got.shape == (shape[0], h, w)
    assert got.dtype == np.float32
    assert w >= 48
    np.testing.assert_allclose(got, expected, atol=0.5 if len(shape) == 3 else 1.0)


def test_block_thumbnails_of_a_frame_far_wider_than_high_shrink_the_whole_frame():
    from medaka_heart.preprocess import block_thumbnails, thumbnails

    frames = np.random.default_rng(4).integers(0, 255, (2, 10, 960), dtype=np.uint8)
    np.testing.assert_array_equal(block_thumbnails(frames, 48), thumbnails(frames, 48))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [None, 3])
def test_shrink_keeps_dtype_and_averages_like_area_resampling(dtype, channels):
    import cv2

    from medaka_heart.preprocess import shrink

    yy, xx = np.mgrid[0:463, 0:610]
    image = (50 + 0.1 * xx + 0.1 * yy).astype(dtype)  # a smooth ramp, not whole-ratio sizes
    checker = ((yy + xx) % 2).astype(dtype) * 40  # detail finer than the target's pixels
    image = image + checker
    if channels:
        image = np.repeat(image[..., None], channels, axis=-1)
    small = shrink(image, 64, 48)
    assert small.shape == ((48, 64) if channels is None else (48, 64, channels))
    assert small.dtype == np.dtype(dtype)
    area = cv2.resize(image.astype(np.float32), (64, 48), interpolation=cv2.INTER_AREA)
    inner = (slice(4, -4), slice(4, -4))  # the borders are handled differently
    np.testing.assert_allclose(small.astype(np.float32)[inner], area[inner], atol=2.0)
    # the checkerboard averages out (no aliasing): what is left is the ramp
    assert float(np.ptp(np.diff(small.astype(np.float32)[inner], axis=1))) < 2.5
