"""Ventricle masks of a video or a still: the fine pass in the located crop, back at native size.

`Segmenter` joins a `runtime.ModelRuntime` (the model folder on its device) and a
`locate.HeartLocator` (where the heart is). There is one way to segment a video,
`segment_video` (the crop of every chunk is decided over the whole video first, then each chunk
is segmented in its crop), and one to segment a still or a stack of unrelated frames,
`segment_still` (located on its own, without a beat; its confidence is checked against the
masks of its mirror images, `flip_agreement`). The fine pass segments the crop of every
frame at input_size^2 (by the model folder's checked int8 network where it has one,
`runtime_int8`; the heart is located in float32) and the probabilities are pasted back at
native geometry (0 outside the crop); where nothing is found, the whole frames are segmented
at coarse_size. Models without a coarse_size run one pass on whole frames. With
`[segment] self_adapt`, a video's fine pass is first fine-tuned on the largest mask of its first
seconds (`model.self_adapt`) and, where the adapted network passes its checks, every chunk is
segmented in its crop by it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .config import PreprocessConfig, SegmentConfig
from .locate import Box, HeartLocator
from .mask_scores import frame_agreement
from .model.inputs import FINE
from .model.self_adapt import (
    MIN_AGREEMENT,
    MIN_TRACE_AGREEMENT,
    SelfAdaptation,
    adapt_to_frame,
    check_adapted,
    pseudo_frame,
    search_frames,
)
from .preprocess import crop_frames, crop_origin, paste_into, prepare_input, restore_geometry
from .runtime import ModelRuntime, default_model_path, frame_confidence

log = logging.getLogger(__name__)

__all__ = ["ChunkSegmentation", "Segmenter", "default_model_path", "flip_agreement",
           "frame_confidence"]

KEEP_FIRST_BYTES = 64 * 2**20  # self-adaptation's first pass over a video's first seconds:
# its probabilities kept up to this much (about 5 s at 40 frames/s of a 300 px crop), to be
# used again where the adaptation is not (the network's first masks stand), not recomputed
FLIPS = (1, 0, -1)  # the mirror images a still is checked with (cv2.flip codes: left-right,
# up-down, both): a network that has found the ventricle finds it in its mirror images too


def flip_agreement(mask: np.ndarray, mirrored: Sequence[np.ndarray]) -> float:
    """Mean Dice (0-1) of a still's mask (H, W) with the masks found in its mirror images
    (`mirrored`, one per FLIPS code, each (H, W) as found in the mirrored image); 1 where
    both are empty."""
    back = np.stack([cv2.flip(np.asarray(m, np.uint8), code)
                     for m, code in zip(mirrored, FLIPS, strict=True)])
    return float(frame_agreement(np.broadcast_to(mask, back.shape), back).dice.mean())



@dataclass(frozen=True)
class ChunkSegmentation:
    """What the segmenter finds in one chunk of frames.

    The probabilities are kept at native px scale inside the crop only (`region`), and made
    whole-frame on request: a crop is a fraction of a frame, and thresholding and pasting it
    is most of the per-frame work after the network.
    """

    region: np.ndarray  # (T, n, n) float32 probability in the crop at native scale (n: the
    # side of `box`'s `crop_origin`), or (T, H, W) for whole frames (box None)
    frame_shape: tuple[int, int]  # (H, W) native px
    confidence: np.ndarray  # (T,) float in [0, 1], `frame_confidence` of the (fine) pass
    box: Box | None  # the crop segmented; None = whole frames (nothing located, or one pass)
    threshold: float  # the model's probability threshold
    adaptation: SelfAdaptation | None = None  # how the fine pass was self-adapted to the video

    @property
    def prob(self) -> np.ndarray:
        """(T, H, W) float32 ventricle probability at native geometry, 0 outside the crop."""
        return self._whole(self.region)

    @property
    def masks(self) -> np.ndarray:
        """(T, H, W) bool ventricle masks."""
        return self._whole(self.region > self.threshold)

    def _whole(self, values: np.ndarray) -> np.ndarray:
        if self.box is None:
            return values
        return paste_into(values, crop_origin(*self.box), *self.frame_shape)


Chunks = Sequence[np.ndarray] | Callable[[], Iterable[np.ndarray]]


class Segmenter:
    """A loaded model ready to segment videos and stills.

    model : model folder or checkpoint; None = the shipped default weights.
    workers : processes sharing this machine (to split the CPU threads between them).
    preprocess : intensity percentiles overriding the model's (None = the model's own).
    settings : any other [segment] key of `config.SegmentConfig` (device, batch_size, threads,
        threshold, coarse_every, refine, candidates, search_every, beat_gate); its defaults
        otherwise.
    """

    def __init__(self, model: str | Path | None = None, *, workers: int = 1,
                 preprocess: PreprocessConfig | None = None, **settings: Any):
        model = None if model is None else str(model)
        self.settings = dataclasses.replace(SegmentConfig(), model=model, **settings)
        if self.settings.self_adapt and self.settings.self_adapt_steps < 1:
            raise ValueError(f"self_adapt_steps must be >= 1, got {self.settings.self_adapt_steps}")
        self.runtime = ModelRuntime(self.settings, preprocess, workers=workers)
        self.locator = HeartLocator(self.runtime, self.settings)

    @classmethod
    def from_config(cls, segment: SegmentConfig, preprocess: PreprocessConfig | None = None,
                    *, workers: int = 1) -> Segmenter:
        """Segmenter as the analysis config's [segment] and [preprocess] sections say."""
        settings = dataclasses.asdict(segment)
        return cls(settings.pop("model"), workers=workers, preprocess=preprocess, **settings)

    @property
    def threshold(self) -> float:
        """Probability above which a pixel is ventricle."""
        return self.runtime.threshold

    def provenance(self) -> dict[str, Any]:
        """Plain description of the model and the locator settings, for result files."""
        locator = self.locator
        return {**self.runtime.provenance(), "coarse_every": locator.coarse_every,
                "refine": locator.refine, "candidates": locator.candidates,
                "search_every": locator.search_every, "beat_gate": locator.beat_gate}

    def segment_video(self, chunks: Chunks, fps: float | None = None
                      ) -> Iterator[tuple[np.ndarray, ChunkSegmentation]]:
        """(frames, segmentation) of each chunk (T, H, W[, C]) of one video, in order.

        `chunks`: the chunks, or a function returning a fresh iterator over them (so that a
        long video need not be held in memory; it is read at least twice: first to decide the
        crop of every chunk, `HeartLocator.locate_video`, then to segment each in its crop).
        `fps` (frames/s; None = unknown) lets the beat guide the search. A video that decodes
        to another number of chunks on a later read is a ValueError. With `self_adapt` it is
        read twice more (a first segmentation, then the taught frame's chunk) before the
        first chunk comes (both stopped after its first seconds, `model.self_adapt.
        search_frames`), and each result's `adaptation` says how the fine pass was adapted.
        """
        source = chunks if callable(chunks) else (lambda kept=list(chunks): iter(kept))
        boxes = self.locator.locate_video(source, fps)
        segmenter, adaptation = self, None
        done: dict[int, ChunkSegmentation] = {}
        if self.settings.self_adapt:
            segmenter, adaptation, done = self._self_adapted(source, boxes, fps)
        for index, (frames, box) in enumerate(_chunks_in(source, boxes)):
            if (found := done.pop(index, None)) is None:
                found = segmenter._segment_at(frames, box, fps)
            yield frames, (found if adaptation is None
                           else dataclasses.replace(found, adaptation=adaptation))

    def _self_adapted(self, source: Callable[[], Iterable[np.ndarray]],
                      boxes: list[Box | None], fps: float | None
                      ) -> tuple[Segmenter, SelfAdaptation | None, dict[int, ChunkSegmentation]]:
        """A segmenter whose fine pass is adapted to this video (`model.self_adapt`), how,
        and the segmentations already made that stand (by chunk index), from a first
        segmentation of the chunks of the video's first `search_frames` (two more reads,
        both stopped there). This one where no frame has a mask (and None), or where the
        adapted masks of the taught frame's chunk agree with the first pass's less than
        MIN_AGREEMENT or their area beats with it less than MIN_TRACE_AGREEMENT (the
        adaptation, not used; then the first pass's segmentations stand, those kept within
        KEEP_FIRST_BYTES)."""
        first_pass: dict[int, ChunkSegmentation] = {}  # kept within KEEP_FIRST_BYTES
        room, counts = KEEP_FIRST_BYTES, []
        for index, (frames, box) in enumerate(_first_chunks(source, boxes, fps)):
            found = self._segment_at(frames, box, fps)
            counts.append(np.count_nonzero(found.region > self.threshold, axis=(1, 2)))
            if found.region.nbytes <= room:
                first_pass[index], room = found, room - found.region.nbytes
        taught = pseudo_frame(np.concatenate(counts))
        if taught is None:
            log.warning("self-adaptation skipped: no frame has a mask")
            return self, None, first_pass
        first = 0
        with contextlib.closing(_first_chunks(source, boxes, fps)) as chunks:  # stops the read
            for index, (frames, box) in enumerate(chunks):
                if taught < first + len(frames):
                    where = index
                    before = (first_pass[index] if index in first_pass
                              else self._segment_at(frames, box, fps))
                    break
                first += len(frames)
        runtime = self.runtime
        trained = adapt_to_frame(runtime.path, runtime.info, frames[taught - first],
                                 before.masks[taught - first],
                                 steps=self.settings.self_adapt_steps, device=runtime.device,
                                 threads=runtime.threads)
        adapted = copy.copy(self)
        adapted.runtime = runtime.with_fine_net(trained.model)
        after = adapted._segment_at(frames, box, fps)
        agreement, trace, used = check_adapted(after.masks, before.masks)
        how = SelfAdaptation(taught, int(np.count_nonzero(before.masks[taught - first])),
                             trained.steps, round(trained.seconds, 3), trained.final_loss,
                             round(agreement, 4), round(trace, 4), used)
        if not how.used:
            log.warning("self-adaptation not used: its masks agree with the first pass's by "
                        "Dice %.2f (at least %.2f) and their area beats with it by r %.2f (at "
                        "least %.2f); frame %d taught, loss %.2f", agreement, MIN_AGREEMENT,
                        trace, MIN_TRACE_AGREEMENT, taught, how.final_loss)
            return self, how, {**first_pass, where: before}
        log.info("fine pass self-adapted on frame %d (mask %d px): %d steps in %.1f s, Dice "
                 "%.2f and area r %.2f with the first pass", taught, how.area_px, how.steps,
                 how.seconds, agreement, trace)
        return adapted, how, {where: after}

    def segment_still(self, image: np.ndarray, *, check: bool = True) -> ChunkSegmentation:
        """Segment one still image (H, W) or (H, W, C) of any dtype, located on its own and
        without a beat; the result holds one frame. (A clip without a frame rate is a video:
        `segment_video([frames])`.)

        A still has no beat to go by, and the network's own certainty does not tell when it
        fails then. With `check`, the still's three mirror images are segmented too (4x the
        work) and its confidence is the lower of the network's and their `flip_agreement`.
        """
        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise ValueError(f"a still is (H, W) or (H, W, C), got shape {image.shape}")
        found = self._segment_one(image)
        if not check:
            return found
        mirrored = [self._segment_one(np.ascontiguousarray(cv2.flip(image, code))).masks[0]
                    for code in FLIPS]
        agreement = flip_agreement(found.masks[0], mirrored)
        return dataclasses.replace(found, confidence=np.minimum(found.confidence, agreement))

    def _segment_one(self, image: np.ndarray) -> ChunkSegmentation:
        """`segment_still` without the check: one image, located on its own."""
        frames = image[None]
        box = self.locator.locate(frames) if self.runtime.coarse_size else None
        return self._segment_at(frames, box, None)

    def _segment_at(self, frames: np.ndarray, box: Box | None, fps: float | None
                    ) -> ChunkSegmentation:
        """Segment a chunk of frames (T, H, W[, C]) in the crop `box`; None: the whole frames
        (at coarse_size, for a two-pass model). `fps` sets the span of a three-channel
        model's motion plane."""
        runtime = self.runtime
        height, width = frames.shape[1:3]
        if not runtime.coarse_size:
            small = prepare_input(frames, runtime.size, runtime.low_percentile,
                                  runtime.high_percentile)
            prob = runtime.predict(small.astype(np.float32, copy=False))
            return self._result(restore_geometry(prob, height, width), prob, None)
        if box is None:  # nothing found: whole frames at the coarse size
            prob = self.locator.coarse_pass(frames, self.locator.motion_plane(frames, fps))
            return self._result(restore_geometry(prob, height, width), prob, None)
        crops, (_, _, side) = crop_frames(frames, *box)
        images, beat = runtime.fine_input(crops)
        prob = runtime.predict(images, FINE, beat=beat, int8=True)
        return self._result(restore_geometry(prob, side, side), prob, box, (height, width))

    def _result(self, region: np.ndarray, network: np.ndarray, box: Box | None,
                frame_shape: tuple[int, int] | None = None) -> ChunkSegmentation:
        """`region`: whole frames (box None) or the crop of `box` in frames of `frame_shape`."""
        shape = frame_shape if frame_shape is not None else (region.shape[1], region.shape[2])
        return ChunkSegmentation(region, shape, frame_confidence(network, self.threshold), box,
                                 self.threshold)


def _first_chunks(source: Callable[[], Iterable[np.ndarray]], boxes: Sequence[Box | None],
                  fps: float | None) -> Generator[tuple[np.ndarray, Box | None], None, None]:
    """`_chunks_in` up to the chunk that completes the video's first `search_frames(fps)`;
    the read is closed there, or where the caller stops early."""
    wanted = search_frames(fps)
    seen = 0
    with contextlib.closing(_chunks_in(source, boxes)) as chunks:
        for frames, box in chunks:
            yield frames, box
            seen += len(frames)
            if wanted is not None and seen >= wanted:
                return


def _chunks_in(source: Callable[[], Iterable[np.ndarray]], boxes: Sequence[Box | None]
               ) -> Generator[tuple[np.ndarray, Box | None], None, None]:
    """(frames, box) of each chunk of a fresh read of `source`; a ValueError where it decodes
    to another number of chunks than there are boxes (from an earlier read)."""
    count = 0
    for frames in source():
        if count >= len(boxes):
            raise ValueError(f"decodes to more than {len(boxes)} chunks on a later read")
        yield np.asarray(frames), boxes[count]
        count += 1
    if count != len(boxes):
        raise ValueError(f"decodes to {count} chunks on a later read, {len(boxes)} before")
