import pytest

from medaka_heart.locate import best_place, group_places, same_place


def test_same_place_is_measured_in_heart_extents():
    # crop side 100 at crop_scale 2: a heart of 50 px; centres 20 px apart are one place
    assert same_place((100.0, 100.0, 100.0), (120.0, 100.0, 100.0), 2.0)
    assert not same_place((100.0, 100.0, 100.0), (130.0, 100.0, 100.0), 2.0)
    # the larger box sets the scale
    assert same_place((100.0, 100.0, 40.0), (130.0, 100.0, 140.0), 2.0)


def test_group_places_names_places_in_order_and_follows_a_drifting_heart():
    boxes = [None, (10.0, 10.0, 40.0), (200.0, 50.0, 40.0), (12.0, 11.0, 44.0), None]
    assert group_places(boxes, 2.0) == [None, 0, 1, 0, None]
    drift = [(0.0, 0.0, 40.0), (8.0, 0.0, 40.0), (16.0, 0.0, 40.0), (24.0, 0.0, 40.0)]
    assert not same_place(drift[0], drift[3], 2.0)
    assert group_places(drift, 2.0) == [0, 0, 0, 0]  # linked through its neighbours
    assert group_places([None, None], 2.0) == [None, None]


def test_best_place_is_the_one_most_chunks_found_then_the_best_scored():
    scores = [[0.95, 0.9, 0.9],  # a look-alike the network likes, found by one chunk
              [0.80, 0.8, 0.8]]  # the place two chunks found
    assert best_place([1, 2], scores) == 1
    assert best_place([2, 1], scores) == 0
    assert best_place([1, 1], scores) == 0  # a tie: the higher mean score
    with pytest.raises(ValueError, match="places, chunks"):
        best_place([1, 1], [0.5, 0.6])


def test_inference_imports_no_training_or_phantom_code():
    import subprocess
    import sys

    code = ("import sys, medaka_heart.segment; print(' '.join(m for m in sys.modules "
            "if m.startswith('medaka_heart')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "medaka_heart.locate" in loaded  # the check sees the package's modules
    assert "medaka_heart.runtime" in loaded
    training = ("phantom", "model.train", "model.samples", "model.augment", "model.data",
                "model.losses")
    assert [m for m in loaded if any(f"medaka_heart.{t}" in m for t in training)] == []


def test_a_box_is_a_typed_tuple():
    from medaka_heart.locate import Box

    box = Box(10.0, 20.0, 30.0)
    assert (box.cx, box.cy, box.side) == (10.0, 20.0, 30.0)
    assert box == (10.0, 20.0, 30.0)  # unpacks and compares as (cx, cy, side)
