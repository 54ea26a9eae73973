"""Dice and area errors at ED-like and ES-like frames, on disks whose areas are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medaka_heart.mask_scores import frame_agreement, mask_scores, phase_frames


def disks(radii, size=64):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([(xx - 32) ** 2 + (yy - 32) ** 2 <= r * r for r in radii])


def test_phase_frames_pick_the_largest_and_smallest_fifth():
    area = np.array([5, 9, 1, 7, 3, 10, 2, 8, 4, 6])
    ed, es = phase_frames(area)
    assert ed.tolist() == [1, 5]  # areas 9, 10
    assert es.tolist() == [2, 6]  # areas 1, 2
    assert [a.tolist() for a in phase_frames(np.array([4.0]))] == [[0], [0]]
    assert [a.size for a in phase_frames(np.zeros(0))] == [0, 0]


def test_an_es_only_oversegmentation_shows_at_es_only():
    true_r = [20, 19, 10, 11, 15, 20, 10, 16, 14, 12]
    pred_r = [r + 3 if r <= 10 else r for r in true_r]  # too large at the two smallest
    true, pred = disks(true_r), disks(pred_r)
    s = mask_scores(pred, true)
    assert s.dice_ed == pytest.approx(1.0)
    assert s.area_error_ed_pct == pytest.approx(0.0)
    area_t = true[2].sum()
    expected = (pred[2].sum() - area_t) / area_t * 100
    assert s.area_error_es_pct == pytest.approx(expected)
    assert 60 < s.area_error_es_pct < 80  # (13/10)^2 - 1 = 69 %
    assert s.dice_es == pytest.approx(2 * area_t / (area_t + pred[2].sum()))
    assert s.dice_mean == pytest.approx(np.mean(frame_agreement(pred, true).dice))


def test_empty_against_empty_scores_one_and_shapes_must_match():
    empty = np.zeros((2, 8, 8), bool)
    np.testing.assert_array_equal(frame_agreement(empty, empty).dice, [1.0, 1.0])
    assert math.isnan(mask_scores(empty, empty).area_error_es_pct)  # no true area to compare
    with pytest.raises(ValueError, match="differ"):
        mask_scores(empty, np.zeros((3, 8, 8), bool))


def test_pooled_scores_take_each_videos_own_end_systole():
    from medaka_heart.mask_scores import pooled_phase_scores

    # a large heart scored perfectly and a small one 50 % too large everywhere: pooled over
    # all frames at once, the small heart's frames would all count as ES-like
    large = (np.ones(10), np.linspace(1000, 2000, 10), np.linspace(1000, 2000, 10))
    small = (np.full(10, 0.8), 1.5 * np.linspace(100, 200, 10), np.linspace(100, 200, 10))
    pooled = pooled_phase_scores([large, small])
    assert pooled.n_frames == 20
    assert pooled.area_error_es_pct == pytest.approx(25.0)  # 2 frames at 0 %, 2 at 50 %
    assert pooled.area_error_ed_pct == pytest.approx(25.0)
    assert pooled.dice_es == pytest.approx(0.9)
    assert pooled.dice_mean == pytest.approx(0.9)
    assert math.isnan(pooled_phase_scores([]).dice_es)


def test_no_frames_score_nan():
    empty = np.zeros((0, 8, 8), bool)
    scores = mask_scores(empty, empty)
    assert scores.n_frames == 0
    assert math.isnan(scores.dice_mean)
    assert math.isnan(scores.area_error_es_pct)
