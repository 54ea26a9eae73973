"""scripts/pairs_dice.py: annotated pairs are found, segmented per sequence and scored."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import tifffile


class HalfRightSegmenter:
    """Stand-in: predicts the left half of each true ventricle (Dice 2/3 on a square)."""

    def __init__(self, truths):
        self.truths = truths

    def segment_video(self, chunks, fps=None):
        for frames in chunks:
            pred = self.truths.pop(0).copy()
            pred[:, :, 20:] = False
            yield frames, SimpleNamespace(masks=pred, confidence=np.full(len(frames), 0.5))


def test_pairs_are_scored_per_frame(tmp_path, load_script):
    module = load_script("pairs_dice")
    truth = np.zeros((3, 32, 40), bool)
    truth[:, 8:24, 12:28] = True  # a 16x16 square, half of it left of x = 20
    for k in range(3):
        tifffile.imwrite(tmp_path / f"clip_{k:04d}.tif",
                         np.full((32, 40, 3), 100 + k, np.uint8))
        rgb = np.repeat(truth[k][..., None], 3, axis=2).astype(np.uint8) * 255
        tifffile.imwrite(tmp_path / f"clip_{k:04d}_mask.tif", rgb)
    sequences = module.find_pairs(tmp_path)
    assert [len(s.images) for s in sequences] == [3]
    table = module.dice_on_pairs(HalfRightSegmenter([truth]), sequences)
    assert len(table) == 3
    np.testing.assert_allclose(table.dice, 2 * 128 / (128 + 256))
    assert (table.true_px == 256).all()
    assert (table.pred_px == 128).all()


def test_no_pairs_is_a_one_line_error(tmp_path, capsys, load_script):
    assert load_script("pairs_dice").main([str(tmp_path)]) == 1
    assert "no image/mask pairs" in capsys.readouterr().err
