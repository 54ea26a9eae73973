import numpy as np
import pytest
from skimage.draw import disk, ellipse

from medaka_heart.morphometry import measure_masks, region_features, select_component


def test_ellipse_features_match_geometry():
    mask = np.zeros((300, 400), dtype=bool)
    rr, cc = ellipse(150, 200, 40, 90, shape=mask.shape)  # semi-axes: rows 40, cols 90
    mask[rr, cc] = True
    f = region_features(mask, pixel_size_um=2.0)
    assert f["major_um"] == pytest.approx(2 * 90 * 2.0, rel=0.01)
    assert f["minor_um"] == pytest.approx(2 * 40 * 2.0, rel=0.01)
    assert f["area_um2"] == pytest.approx(np.pi * 90 * 40 * 4.0, rel=0.01)
    assert f["volume_pl"] == pytest.approx(np.pi / 6 * 160**2 * 360 / 1000, rel=0.02)
    assert f["centroid_x_um"] == pytest.approx(400.0, abs=1.0)
    assert f["centroid_y_um"] == pytest.approx(300.0, abs=1.0)
    assert f["solidity"] > 0.97


def test_empty_mask_gives_nan_not_crash():
    table, state = measure_masks(np.zeros((3, 20, 20), dtype=bool), 1.0)
    assert table["area_um2"].isna().all()
    assert state is None
    assert list(table["frame"]) == [0, 1, 2]


def test_temporally_consistent_component_beats_largest():
    masks = np.zeros((3, 100, 100), dtype=bool)
    for t in range(3):
        rr, cc = disk((30, 30), 10)
        masks[t, rr, cc] = True
    rr, cc = disk((75, 75), 20)  # a bigger spurious blob in frame 2 only
    masks[2, rr, cc] = True
    table, _ = measure_masks(masks, 1.0)
    assert table["area_um2"].iloc[2] == pytest.approx(table["area_um2"].iloc[0])
    assert table["n_components"].tolist() == [1, 1, 2]


def test_nearest_component_when_no_overlap():
    prev_mask = np.zeros((100, 100), dtype=bool)
    prev_mask[10:20, 10:20] = True
    from medaka_heart.morphometry import TrackState

    mask = np.zeros((100, 100), dtype=bool)
    mask[22:30, 22:30] = True  # near, small
    mask[60:95, 60:95] = True  # far, large
    kept, n = select_component(mask, TrackState(prev_mask, (14.5, 14.5)))
    assert n == 2
    assert kept[25, 25]
    assert not kept[70, 70]


def test_chunks_chain_like_one_pass(law):
    masks = law.masks(20)
    whole, _ = measure_masks(masks, law.pixel_size_um)
    first, state = measure_masks(masks[:7], law.pixel_size_um)
    second, _ = measure_masks(masks[7:], law.pixel_size_um, first_frame=7, previous=state)
    import pandas as pd

    pd.testing.assert_frame_equal(whole, pd.concat([first, second], ignore_index=True))


def _random_region(rng: np.random.Generator, shape=(90, 120)) -> np.ndarray:
    """A rotated ellipse or a random (possibly concave) polygon, non-empty."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    while not mask.any():
        if rng.random() < 0.5:
            rr, cc = ellipse(45 + rng.uniform(-5, 5), 60 + rng.uniform(-5, 5),
                             rng.uniform(1, 40), rng.uniform(1, 50), shape=shape,
                             rotation=rng.uniform(-np.pi, np.pi))
        else:
            rr, cc = polygon(rng.uniform(0, shape[0], 6), rng.uniform(0, shape[1], 6), shape)
        mask[rr, cc] = True
    return mask


@pytest.mark.parametrize("seed", range(4))
def test_features_are_skimage_regionprops(seed):
    from skimage.measure import label, regionprops

    rng = np.random.default_rng(seed)
    for _ in range(40):
        mask = _random_region(rng)
        mask = label(mask, connectivity=2) == 1  # one region, as measure_masks keeps
        px = rng.uniform(0.3, 3.0)
        found = region_features(mask, px)
        ref = regionprops(mask.astype(np.uint8), spacing=(px, px))[0]
        expected = {"area_um2": ref.area, "major_um": ref.axis_major_length,
                    "minor_um": ref.axis_minor_length,
                    "equiv_diameter_um": ref.equivalent_diameter_area,
                    "orientation_rad": ref.orientation, "centroid_y_um": ref.centroid[0],
                    "centroid_x_um": ref.centroid[1]}
        for name, value in expected.items():
            assert found[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def test_solidity_is_the_hull_of_every_pixel():
    import cv2
    from skimage.measure import label

    from medaka_heart.morphometry import solidity

    rng = np.random.default_rng(7)
    for _ in range(60):
        mask = label(_random_region(rng), connectivity=2) == 1
        hull = cv2.convexHull(cv2.findNonZero(mask.astype(np.uint8)))
        hull_px = cv2.contourArea(hull) + cv2.arcLength(hull, closed=True) / 2 + 1
        assert solidity(mask) == pytest.approx(min(1.0, mask.sum() / hull_px), rel=1e-12)
