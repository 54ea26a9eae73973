"""pipeline.analyze_video: how it drives a segmenter along one video."""

from __future__ import annotations

import types

import numpy as np
import tifffile
from skimage.draw import ellipse

from medaka_heart.config import Config, with_overrides
from medaka_heart.options import VideoOptions
from medaka_heart.pipeline import analyze_video


class PlanningSegmenter:
    """Thresholds the frames; plans a box per chunk and records where each chunk is segmented."""

    def __init__(self):
        self.plans, self.used = [], []

    def segment_video(self, chunks, fps=None):
        """A plan over one read of the chunks, then each chunk of a second read in its box."""
        plan = [(float(len(self.plans)), float(i), 10.0) for i, _ in enumerate(chunks())]
        self.plans.append(plan)
        for frames, box in zip(chunks(), plan, strict=True):
            self.used.append(box)
            masks = np.asarray(frames) > 100
            yield frames, types.SimpleNamespace(masks=masks, confidence=np.ones(len(frames)))

    def provenance(self):
        return {"model": "planning"}


def _beating_video(path, n=60, fps=10.0):
    frames = np.full((n, 64, 80), 20, np.uint8)
    for i in range(n):
        b = 10 + 4 * np.sin(2 * np.pi * 1.5 * i / fps)
        frames[i][ellipse(32, 40, b, 16, shape=(64, 80))] = 200
    tifffile.imwrite(path, frames, metadata={"fps": fps})


def test_each_chunk_is_segmented_where_the_plan_of_its_own_video_puts_it(tmp_path):
    video = tmp_path / "fish.tif"
    _beating_video(video)
    config = with_overrides(Config(), "io", chunk_frames=20)
    seg = PlanningSegmenter()
    analyze_video(video, tmp_path / "out", config, VideoOptions(plots=False), segmenter=seg)
    assert seg.plans == [[(0.0, 0.0, 10.0), (0.0, 1.0, 10.0), (0.0, 2.0, 10.0)]]  # 3 chunks
    assert seg.used == seg.plans[0]
    analyze_video(video, tmp_path / "out2", config, VideoOptions(plots=False), segmenter=seg)
    assert len(seg.plans) == 2
    assert seg.used[3:] == seg.plans[1]


def test_a_video_is_decoded_once_when_it_fits_in_memory(tmp_path, monkeypatch):
    from medaka_heart import pipeline

    video = tmp_path / "fish.tif"
    _beating_video(video)
    reads = []
    real_open = pipeline.open_video

    def counting_open(path):
        reader = real_open(path)
        chunks = reader.chunks

        def counted(n, **kwargs):
            reads.append(n)
            return chunks(n, **kwargs)

        reader.chunks = counted
        return reader

    monkeypatch.setattr(pipeline, "open_video", counting_open)
    config = with_overrides(Config(), "io", chunk_frames=20)
    seg = PlanningSegmenter()
    analyze_video(video, tmp_path / "out", config, VideoOptions(plots=False), segmenter=seg)
    assert len(reads) == 1  # located and segmented from one decoding
    assert seg.used == seg.plans[0]
