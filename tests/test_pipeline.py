"""pipeline.analyze_video: how it drives a segmenter along one video."""

from __future__ import annotations

import types

import numpy as np
import tifffile
from skimage.draw import ellipse

from medaka_heart.config import Config, with_overrides
from medaka_heart.pipeline import analyze_video


class RecordingSegmenter:
    """Thresholds the frames; records the `previous` box it is given for each chunk."""

    def __init__(self):
        self.given = []

    def segment(self, frames, fps=None, previous=None):
        self.given.append(previous)
        box = (float(len(self.given)), 0.0, 10.0)
        masks = np.asarray(frames) > 100
        return types.SimpleNamespace(masks=masks, confidence=np.ones(len(frames)), box=box)

    def provenance(self):
        return {"model": "recording"}


def _beating_video(path, n=60, fps=10.0):
    frames = np.full((n, 64, 80), 20, np.uint8)
    for i in range(n):
        b = 10 + 4 * np.sin(2 * np.pi * 1.5 * i / fps)
        frames[i][ellipse(32, 40, b, 16, shape=(64, 80))] = 200
    tifffile.imwrite(path, frames, metadata={"fps": fps})


def test_each_chunk_gets_the_crop_of_the_chunk_before_within_a_video_only(tmp_path):
    video = tmp_path / "fish.tif"
    _beating_video(video)
    config = with_overrides(Config(), "io", chunk_frames=20)
    seg = RecordingSegmenter()
    analyze_video(video, tmp_path / "out", config, segmenter=seg, show_progress=False,
                  plots=False)
    assert seg.given == [None, (1.0, 0.0, 10.0), (2.0, 0.0, 10.0)]  # 3 chunks of 20 frames
    analyze_video(video, tmp_path / "out2", config, segmenter=seg, show_progress=False,
                  plots=False)
    assert seg.given[3] is None  # a new video starts afresh
