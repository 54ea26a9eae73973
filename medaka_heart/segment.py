"""Ventricle segmentation of frame stacks with a trained U-Net, streamed in batches.

`Segmenter` loads a model folder or checkpoint (default: the weights shipped in
``medaka_heart/weights/``), picks the device (CUDA, then Apple MPS, then CPU), and turns
frames (T, H, W[, C]) of any dtype into ventricle probabilities at the frames' native
geometry plus a per-frame confidence for quality control.

Two passes per chunk of frames when the model has a ``coarse_size``: a coarse pass on every
`coarse_every`-th whole frame (resized to coarse_size^2) finds the heart; the union of its
masks gives one square box per chunk, ``crop_scale`` x the heart's extent; the fine pass
segments that crop of every frame at input_size^2, and the probabilities are pasted back at
native geometry (0 outside the crop). An unsure coarse pass is repeated at twice its size.
With a known frame rate the coarse pass's candidates are weighed by how much they beat (the
intensity change at heart-rate frequencies, `intensity_rate.beat_power_map`): a still
look-alike (an eye, a blob) loses to a region that beats, and where no candidate beats the
place that does is tried too. Along a video the previous chunk's crop competes too, so a heart
found once is not lost to a look-alike in the next chunk (`locate(..., previous=box)`), and
where the chunks still settle on different places, the place most of them found (the better
score over the video among equals) is used in all of them (`locate_video`, then `segment_at`
each chunk, as the pipeline and `predict_chunks` do). Three-channel models also get a motion plane
(what changed over the chunk's middle 2 s). If nothing is found (by the coarse pass, or in
the previous chunk's crop), the whole frames are segmented at coarse_size. Models without a
coarse_size run one pass on whole frames. A model folder with a ``localiser/`` model folder
inside runs its coarse pass with that network (one trained on whole frames only).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import PreprocessConfig, SegmentConfig
from .intensity_rate import beat_power_map, intensity_heart_rate
from .model.checkpoint import LOCALISER_DIR, ModelInfo, load_checkpoint, model_hash
from .model.device import cpu_threads, resolve_device
from .model.samples import COARSE, FINE, MOTION_WINDOW_S, motion_image, network_input
from .model.unet import fuse_batchnorm
from .places import Box, best_place, group_places
from .preprocess import (
    normalise_intensity,
    prepare_input,
    resize_stack,
    restore_geometry,
    thumbnails,
    to_gray,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "weights"
CUDA_BATCH_FACTOR = 4  # larger batches on a GPU
MIN_BOX_PX = 16.0  # smallest heart extent assumed when sizing the crop, native px
MIN_COARSE_FRAMES = 6  # the coarse pass sees at least this many frames of a chunk
MIN_COARSE_PEAK = 0.05  # below this coarse probability nothing is found
WEAK_COARSE_PEAK = 0.5  # below this the coarse pass is repeated at twice coarse_size
COARSE_LEVEL = 0.97  # coarse heart region: above this share of its peak (splits off the atrium)
CANDIDATE_LEVEL = 0.5  # with a known frame rate: regions above this share of the peak compete
MAX_CANDIDATES = 4
BEAT_GATE = 0.5  # a candidate's score: coarse peak x min(1, its beat power / BEAT_GATE)
BEAT_THUMB_WIDTH = 64  # px, thumbnails the beat power is measured on
MIN_BEAT_SECONDS = 1.5  # shorter chunks are located without the beat power
MIN_BEAT_PERIODICITY = 0.3  # nor chunks whose intensity beats less regularly than this
MIN_CROP_FRACTION = 0.12  # first crop side at least this share of the frame's larger side
GROW = 1.6  # crop growth when the fine mask touches the crop's edge (heart cut off)
HANDED_ON_WEIGHT = 0.95  # the previous chunk's crop wins only if this much surer than the rest


def default_model_path() -> Path:
    """The model folder shipped with the package."""
    return DEFAULT_MODEL


def frame_confidence(prob: np.ndarray, threshold: float = 0.5, border_px: int = 2) -> np.ndarray:
    """Per-frame confidence in [0, 1]: mean |2p - 1| over the predicted foreground and its border.

    prob : (T, S, S) probabilities. The region is the thresholded mask dilated by `border_px`
    pixels, where an uncertain model leaves p near 0.5. A frame with no foreground scores the
    mean |2p - 1| over the whole frame.
    """
    import cv2

    prob = np.asarray(prob, dtype=np.float32)
    certainty = np.abs(2.0 * prob - 1.0)
    kernel = np.ones((2 * border_px + 1, 2 * border_px + 1), np.uint8)
    out = np.empty(len(prob), dtype=np.float64)
    for i, (p, c) in enumerate(zip(prob, certainty, strict=True)):
        region = cv2.dilate((p > threshold).astype(np.uint8), kernel) > 0
        out[i] = c[region].mean() if region.any() else c.mean()
    return out


def heart_boxes(prob: np.ndarray, level: float, limit: int = 3
                ) -> list[tuple[float, float, float, float]]:
    """Candidate hearts in (T, S, S) probabilities: (centre x, centre y, width, height) in px.

    Region: the pixelwise maximum over frames above `level`; its connected components, most
    confident first (by their highest temporal-mean probability), at most `limit`. Empty if
    the peak is below MIN_COARSE_PEAK.
    """
    import cv2

    peak = prob.max(axis=0)
    top = float(peak.max())
    if top < MIN_COARSE_PEAK:
        return []
    region = (peak > min(level, top * 0.999)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    score = np.zeros(count)
    np.maximum.at(score, labels.ravel(), prob.mean(axis=0).ravel())
    order = 1 + np.argsort(-score[1:], kind="stable")[:limit]
    return [(x + bw / 2.0, y + bh / 2.0, float(bw), float(bh))
            for x, y, bw, bh in (stats[k, :4].astype(float) for k in order)]


def coarse_candidates(prob: np.ndarray, level: float, limit: int
                      ) -> list[tuple[tuple[float, float, float, float],
                                      tuple[float, float, float, float], float]]:
    """Competing regions in (T, S, S) coarse probabilities, most confident first.

    The connected components of the pixelwise maximum over frames above `level`, at most
    `limit`. Each gives (core, extent, score): `core` the (centre x, centre y, width, height)
    in px of the heart box inside it (`heart_boxes` at COARSE_LEVEL x its own peak), `extent`
    the same of the whole component, `score` its highest temporal-mean probability (the
    confidence `heart_boxes` ranks by).
    """
    import cv2

    peak_map = prob.max(axis=0)
    mean_map = prob.mean(axis=0)
    count, labels = cv2.connectedComponents((peak_map > level).astype(np.uint8), connectivity=8)
    found = []
    for k in range(1, count):
        inside = labels == k
        own = prob * inside
        core = heart_boxes(own, COARSE_LEVEL * float(peak_map[inside].max()), 1)
        if not core:  # below MIN_COARSE_PEAK
            continue
        ys, xs = np.nonzero(inside)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        extent = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, float(x1 - x0), float(y1 - y0))
        found.append((core[0], extent, float(mean_map[inside].max())))
    found.sort(key=lambda c: -c[2])
    return found[:limit]


def beat_at(beat: np.ndarray, box: tuple[float, float, float, float], scale_x: float,
            scale_y: float) -> float:
    """Largest value of a (h, w) beat power map inside `box` (centre x, centre y, width,
    height in px of an image whose px are scale_x x scale_y map px), at least one map px."""
    cx, cy, bw, bh = box
    h, w = beat.shape
    x0 = int(np.clip(np.floor((cx - bw / 2) / scale_x), 0, w - 1))
    x1 = int(np.clip(np.ceil((cx + bw / 2) / scale_x), x0 + 1, w))
    y0 = int(np.clip(np.floor((cy - bh / 2) / scale_y), 0, h - 1))
    y1 = int(np.clip(np.ceil((cy + bh / 2) / scale_y), y0 + 1, h))
    return float(beat[y0:y1, x0:x1].max())


def beat_box(beat: np.ndarray, scale_x: float, scale_y: float) -> tuple[float, float, float]:
    """(centre x, centre y, extent) in px of the region around the maximum of a (h, w) beat
    power map (above half of it); map px are scale_x x scale_y image px."""
    import cv2

    _, labels = cv2.connectedComponents((beat >= 0.5 * beat.max()).astype(np.uint8))
    y, x = np.unravel_index(int(np.argmax(beat)), beat.shape)
    ys, xs = np.nonzero(labels == labels[y, x])
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return ((x0 + x1) / 2.0 * scale_x, (y0 + y1) / 2.0 * scale_y,
            max((x1 - x0) * scale_x, (y1 - y0) * scale_y))


def crop_frames(frames: np.ndarray, cx: float, cy: float, side: float
                ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Square grayscale crops (T, n, n) float32 of frames (T, H, W[, C]); edges replicated.

    Returns the crops and (x0, y0, n): the crop's top-left corner in the frame (may be
    negative) and its side, px. The centre (cx, cy) must lie inside the frame.
    """
    h, w = frames.shape[1:3]
    n = max(int(round(side)), 1)
    x0, y0 = int(round(cx - n / 2.0)), int(round(cy - n / 2.0))
    ix0, iy0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
    ix1, iy1 = max(min(x0 + n, w), ix0 + 1), max(min(y0 + n, h), iy0 + 1)
    gray = to_gray(frames[:, iy0:iy1, ix0:ix1])
    pads = ((0, 0), (iy0 - y0, y0 + n - iy1), (ix0 - x0, x0 + n - ix1))
    if any(a or b for a, b in pads):
        gray = np.pad(gray, tuple((max(a, 0), max(b, 0)) for a, b in pads), mode="edge")
    return gray[:, :n, :n], (x0, y0, n)


def _check_sizes(path: Path, info: ModelInfo, sides: dict[str, int]) -> None:
    """Refuse input sides (px, by name) the network's depth cannot halve to whole pixels."""
    multiple = 2 ** info.architecture.depth
    for name, side in sides.items():
        if side % multiple:
            raise ValueError(f"{path}: {name} {side} is not a multiple of {multiple}")


@dataclass(frozen=True)
class ChunkSegmentation:
    """What `Segmenter.segment` or `segment_at` finds in one chunk of frames."""

    prob: np.ndarray  # (T, H, W) float32 ventricle probability at native geometry
    confidence: np.ndarray  # (T,) float in [0, 1], `frame_confidence` of the (fine) pass
    box: Box | None  # the crop segmented; None = whole frames (nothing located, or one pass)
    threshold: float  # the model's probability threshold

    @property
    def masks(self) -> np.ndarray:
        """(T, H, W) bool ventricle masks."""
        return self.prob > self.threshold


class Segmenter:
    """A loaded U-Net ready to segment frames.

    Parameters
    ----------
    model : model folder or checkpoint file; None = the shipped default weights.
    device : auto | cpu | cuda | mps.
    batch_size : frames per forward pass (x4 on CUDA).
    threads : torch CPU threads; None = usable cores // workers.
    workers : processes sharing this machine (to avoid oversubscribing cores).
    size, low_percentile, high_percentile : input overrides; None = what the model was trained on.
    threshold : probability threshold; None = the model's tuned threshold.
    coarse_every : the coarse pass looks at every n-th frame of a chunk (at least 2 frames).
    refine : fine passes on those frames that re-centre and re-size the crop (0 = none).
    candidates : coarse candidates checked by the fine pass (with refine >= 1).
    beat_gate : share of the strongest beat power (`beat_map`) below which a coarse candidate
        counts as not beating, its score scaled down in proportion (0 = the beat power is
        not used: the most confident region wins).
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "auto",
                 batch_size: int = 16, threads: int | None = None, workers: int = 1,
                 size: int | None = None, low_percentile: float | None = None,
                 high_percentile: float | None = None, threshold: float | None = None,
                 coarse_every: int = 8, refine: int = 1, candidates: int = 1,
                 beat_gate: float = BEAT_GATE):
        self.path = Path(model) if model is not None else default_model_path()
        checkpoint = load_checkpoint(self.path)
        self.info: ModelInfo = checkpoint.info
        self.sha256 = model_hash(self.path)
        self.device = resolve_device(device)
        self.size = int(size or self.info.input_size)
        self.low_percentile = self.info.low_percentile if low_percentile is None else low_percentile
        self.high_percentile = (self.info.high_percentile if high_percentile is None
                                else high_percentile)
        self.threshold = self.info.threshold if threshold is None else float(threshold)
        self.coarse_size = int(self.info.coarse_size)
        self.coarse_every = max(1, int(coarse_every))
        self.refine = max(0, int(refine))
        self.candidates = max(1, int(candidates)) if self.refine else 1
        self.beat_gate = max(0.0, float(beat_gate))
        _check_sizes(self.path, self.info, {"input size": self.size,
                                            "coarse size": self.coarse_size})
        self.batch_size = batch_size * (CUDA_BATCH_FACTOR if self.device.type == "cuda" else 1)
        if self.device.type == "cpu":
            self.threads = cpu_threads(threads, workers)
            torch.set_num_threads(self.threads)
        else:
            self.threads = None
        self.memory_format = (torch.channels_last if self.device.type == "cpu"
                              else torch.contiguous_format)
        self.net = self._ready(checkpoint)
        self.coarse_net, self.coarse_info = self.net, self.info  # the coarse pass's network
        localiser = self.path / LOCALISER_DIR
        if localiser.is_dir():  # a network of its own
            found = load_checkpoint(localiser)
            _check_sizes(localiser, found.info, {"coarse size": self.coarse_size})
            self.coarse_net, self.coarse_info = self._ready(found), found.info
        log.info("segmenter %s (sha256 %s...) on %s, input %dx%d", self.path, self.sha256[:12],
                 self.device, self.size, self.size)

    def _ready(self, checkpoint) -> torch.nn.Module:
        """The checkpoint's network, batch norm fused, on the device, in inference mode."""
        net = fuse_batchnorm(checkpoint.build_model())
        return net.to(self.device, memory_format=self.memory_format).eval()

    @classmethod
    def from_config(cls, segment: SegmentConfig, preprocess: PreprocessConfig | None = None,
                    *, workers: int = 1) -> Segmenter:
        """Segmenter as the analysis config says; preprocess overrides the model's percentiles.

        The input size always comes from the model (it was trained at that size).
        """
        pct = {}
        if preprocess is not None:
            pct = {"low_percentile": preprocess.low_percentile,
                   "high_percentile": preprocess.high_percentile}
        beat = {} if segment.beat_gate is None else {"beat_gate": segment.beat_gate}
        return cls(segment.model, device=segment.device, batch_size=segment.batch_size,
                   threads=segment.threads, workers=workers, threshold=segment.threshold,
                   **pct, **beat)

    def provenance(self) -> dict:
        """Plain description of the model in use, for result files."""
        return {"model": str(self.path), "model_sha256": self.sha256,
                "device": str(self.device), "input_size": self.size,
                "coarse_size": self.coarse_size, "crop_scale": self.info.crop_scale,
                "architecture": self.info.architecture.to_dict(),
                "localiser": (None if self.coarse_net is self.net
                              else self.coarse_info.architecture.to_dict()),
                "threshold": self.threshold, "threads": self.threads,
                "beat_gate": self.beat_gate}

    @torch.inference_mode()
    def predict_small(self, images: np.ndarray, pass_value: float = FINE,
                      motion: np.ndarray | None = None) -> np.ndarray:
        """Network-size input (T, S, S) float32 in [0, 1] -> probabilities (T, S, S) float32.

        `pass_value` fills the pass plane of two-channel models (COARSE or FINE; COARSE runs
        the localiser, if the model has one); `motion` (S, S) the motion plane of three-channel
        models (None = zeros).
        """
        out = np.empty(images.shape, dtype=np.float32)
        cuda = self.device.type == "cuda"
        net, info = ((self.coarse_net, self.coarse_info) if pass_value == COARSE
                     else (self.net, self.info))
        channels = info.architecture.in_channels
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            x = torch.from_numpy(network_input(batch, channels, pass_value, motion))
            if cuda:
                x = x.pin_memory()
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            amp = (torch.autocast("cuda", dtype=torch.float16) if cuda
                   else contextlib.nullcontext())
            with amp:
                prob = torch.sigmoid(net(x).float())
            out[start:start + len(batch)] = prob[:, 0].cpu().numpy()
        return out

    def _normalise(self, gray: np.ndarray, size: int) -> np.ndarray:
        small = resize_stack(gray, size, size)
        out = normalise_intensity(small, self.low_percentile, self.high_percentile)
        return out.astype(np.float32, copy=False)

    def motion_plane(self, frames: np.ndarray, fps: float | None, size: int | None = None
                     ) -> np.ndarray | None:
        """The coarse pass's motion plane (size^2, default coarse_size^2) of a chunk
        (three-channel models; else None).

        `motion_image` of up to MIN_COARSE_FRAMES + 2 frames spread over the middle
        MOTION_WINDOW_S seconds of the chunk (the whole chunk if `fps` is None): the training
        scenes were that long, and over longer spans slow drift outshines the beat.
        """
        if self.coarse_info.architecture.in_channels != 3:
            return None
        t = len(frames)
        span = t if fps is None else min(t, max(2, int(round(MOTION_WINDOW_S * fps))))
        start = (t - span) // 2
        idx = np.unique(np.linspace(start, start + span - 1, MIN_COARSE_FRAMES + 2).round())
        gray = to_gray(frames[idx.astype(int)])
        return motion_image(self._normalise(gray, size or self.coarse_size))

    def beat_map(self, frames: np.ndarray, fps: float | None) -> np.ndarray | None:
        """`intensity_rate.beat_power_map` of a chunk's BEAT_THUMB_WIDTH px thumbnails, smoothed
        (Gaussian, 1 px) and scaled to a maximum of 1; None if the frame rate is unknown, the
        chunk is shorter than MIN_BEAT_SECONDS, beat_gate is 0, or the chunk's intensity beats
        irregularly (the `intensity_heart_rate` periodicity of its most changing pixels is
        below MIN_BEAT_PERIODICITY: jerks, noise or a beat too fast for the frame rate, where
        the power map points anywhere)."""
        if not self.beat_gate or fps is None or len(frames) < MIN_BEAT_SECONDS * fps:
            return None
        import cv2

        thumbs = thumbnails(frames, BEAT_THUMB_WIDTH)
        if intensity_heart_rate(thumbs, fps).periodicity < MIN_BEAT_PERIODICITY:
            return None
        beat = cv2.GaussianBlur(beat_power_map(thumbs, fps), (0, 0), 1.0)  # regions, not pixels
        top = float(beat.max())
        return beat / top if top > 0 else beat

    def coarse_pass(self, frames: np.ndarray, motion: np.ndarray | None = None,
                    size: int | None = None) -> np.ndarray:
        """Coarse probabilities (N, S, S) of whole frames (N, H, W[, C]) at size (default
        coarse_size). `motion`: the chunk's `motion_plane` at that size (None = zeros).
        """
        return self.predict_small(self._normalise(to_gray(frames), size or self.coarse_size),
                                  COARSE, motion)

    def locate(self, frames: np.ndarray, fps: float | None = None, previous: Box | None = None
               ) -> Box | None:
        """Find the heart: (centre x, centre y, side) in native px of the crop for this chunk.

        Looks at every `coarse_every`-th frame (at least MIN_COARSE_FRAMES), with the chunk's
        `motion_plane` (`fps`: frames/s, None = unknown); if its peak probability is below
        WEAK_COARSE_PEAK (a heart too small to see at coarse_size, as in plate wells), the
        coarse pass is repeated at twice that size and the stronger kept. It proposes up to
        `candidates` regions: without a `beat_map` (frame rate unknown, short chunk), the most
        confident (`heart_boxes` at COARSE_LEVEL x its peak); with one, up to MAX_CANDIDATES
        regions above CANDIDATE_LEVEL x the peak (`coarse_candidates`) ranked by confidence x
        min(1, beat power / beat_gate), and if none reaches beat_gate, the region that beats
        most (`beat_box`) competes too. Each is checked by `refine` fine passes on those
        frames, which re-centre the crop and size it from their own masks (or grow it by GROW
        where the mask touches the crop's edge); the candidate whose fine masks are most
        confident wins, their confidence weighed, with a beat map, by min(1, beat power in the
        refined box / beat_gate). `previous`, the crop of the video's previous chunk, competes
        too, its confidence x HANDED_ON_WEIGHT (it must be surer to win: a wrong crop is not
        handed on through a video whose chunks find the heart on their own). The side is
        `crop_scale` x the heart's extent, at least MIN_CROP_FRACTION and at most all of the
        frame's larger side. None if the coarse pass finds nothing and the previous crop (if
        any) shows nothing either.
        """
        return self._locate(frames, fps, previous, self.beat_map(frames, fps))

    def _locate(self, frames: np.ndarray, fps: float | None, previous: Box | None,
                beat: np.ndarray | None) -> Box | None:
        """`locate` with the chunk's `beat_map` given."""
        h, w = frames.shape[1:3]
        sample = self._coarse_sample(frames)
        sc = self.coarse_size
        prob = self.coarse_pass(sample, self.motion_plane(frames, fps))
        if prob.max() < WEAK_COARSE_PEAK:  # a small heart (plate wells): look again, closer
            closer = self.coarse_pass(sample, self.motion_plane(frames, fps, 2 * sc), 2 * sc)
            if closer.max() > prob.max():
                prob, sc = closer, 2 * sc
        proposal = None
        if beat is None:
            found = heart_boxes(prob, COARSE_LEVEL * float(prob.max()), self.candidates)
        else:  # the most confident region among those that beat
            competing = coarse_candidates(prob, CANDIDATE_LEVEL * float(prob.max()),
                                          MAX_CANDIDATES)
            bx, by = sc / beat.shape[1], sc / beat.shape[0]
            power = [beat_at(beat, extent, bx, by) for _, extent, _ in competing]
            order = np.argsort([-c[2] * self._beat_weight(b)
                                for c, b in zip(competing, power, strict=True)], kind="stable")
            found = [competing[i][0] for i in order[:self.candidates]]
            if not any(b >= self.beat_gate for b in power):
                proposal = beat_box(beat, w / beat.shape[1], h / beat.shape[0])
        largest = float(max(h, w))
        starts = [(cx * w / sc, cy * h / sc, max(bw * w / sc, bh * h / sc))
                  for cx, cy, bw, bh in found]
        if proposal is not None:  # nothing the network proposes beats: look where it beats too
            starts = [proposal, *starts]
        weights = [1.0] * len(starts)
        if previous is not None:  # where the heart was a moment ago
            starts.append((previous[0], previous[1], previous[2] / self.info.crop_scale))
            weights.append(HANDED_ON_WEIGHT)
        best, best_score = None, -1.0
        for (cx, cy, extent), weight in zip(starts, weights, strict=True):
            box, score = self._judge(sample, beat, self._crop_for(cx, cy, extent, largest))
            score *= weight
            if score > best_score:
                best, best_score = box, score
        if best_score <= 0 and len(starts) == 1 and previous is not None:
            return None  # nothing found here, nor any longer where the heart was
        return best

    def locate_video(self, chunks: Callable[[], Iterable[np.ndarray]], fps: float | None = None
                     ) -> list[Box | None]:
        """Where to segment each chunk of one video: a crop box per chunk, for `segment_at`.

        `chunks()` yields the video's chunks (T, H, W[, C]) in order; it is called a second
        time only where the chunks disagree. Each chunk is `locate`d with the previous one's
        crop handed on. Where they settle on more than one place (`places.group_places`),
        every place is judged on every chunk, as `locate` judges a candidate, and the place
        most chunks found (the highest mean score among equals; `places.best_place`) is used
        in the others wherever it shows something: the heart does not jump within a video,
        and a chunk's coarse pass may have missed the place the others found.
        Models without a coarse_size: None for every chunk.
        """
        if not self.coarse_size:
            return [None for _ in chunks()]
        boxes: list[Box | None] = []
        beats: list[np.ndarray | None] = []  # kept for judging the places, if it comes to that
        box = None
        for frames in chunks():
            frames = np.asarray(frames)
            beats.append(self.beat_map(frames, fps))
            box = self._locate(frames, fps, box, beats[-1])
            boxes.append(box)
        labels = group_places(boxes, self.info.crop_scale)
        n_places = len({label for label in labels if label is not None})
        if n_places < 2:
            return boxes
        places = [boxes[labels.index(k)] for k in range(n_places)]  # each one's first box
        judged, count = [], 0
        for frames in chunks():
            if count < len(beats):
                judged.append(self._judge_places(np.asarray(frames), beats[count], places))
            count += 1
        if count != len(boxes):
            raise ValueError(f"the video gave {len(boxes)} chunks, then {count}")
        scores = [[chunk[k][1] for chunk in judged] for k in range(n_places)]
        best = best_place([labels.count(k) for k in range(n_places)], scores)
        log.debug("chunks disagree: places %s, mean scores %s, kept %d", labels,
                  np.round(np.mean(scores, axis=1), 3).tolist(), best)
        return [box if label == best else (chunk[best][0] if chunk[best][1] > 0 else box)
                for box, label, chunk in zip(boxes, labels, judged, strict=True)]

    def _judge_places(self, frames: np.ndarray, beat: np.ndarray | None, places: Sequence[Box]
                      ) -> list[tuple[Box, float]]:
        """Each place's (refined box, score) on one chunk whose `beat_map` is `beat`, as
        `locate` judges a candidate."""
        sample, largest = self._coarse_sample(frames), max(frames.shape[1:3])
        return [self._judge(sample, beat,
                            self._crop_for(cx, cy, side / self.info.crop_scale, largest))
                for cx, cy, side in places]

    def _coarse_sample(self, frames: np.ndarray) -> np.ndarray:
        """Every `coarse_every`-th frame of a chunk, evenly spread, at least MIN_COARSE_FRAMES."""
        t = len(frames)
        n = min(t, max(MIN_COARSE_FRAMES, -(-t // self.coarse_every)))
        return frames[np.unique(np.linspace(0, t - 1, n).round().astype(int))]

    def _crop_for(self, cx: float, cy: float, extent: float, largest: float) -> Box:
        """The crop box for a heart of `extent` px at (cx, cy): `crop_scale` x the extent, at
        least MIN_CROP_FRACTION and at most all of the frame's larger side `largest` px."""
        side = max(extent, MIN_BOX_PX) * self.info.crop_scale
        side = max(side, MIN_CROP_FRACTION * largest)  # a heart is never a speck
        return cx, cy, min(side, largest)

    def _judge(self, sample: np.ndarray, beat: np.ndarray | None, box: Box
               ) -> tuple[Box, float]:
        """`_refine` a crop on a chunk's coarse sample (T, H, W[, C]): (box, confidence x, with
        a beat map, the beat weight of the refined box)."""
        h, w = sample.shape[1:3]
        box, score = self._refine(sample, box)
        if beat is not None:  # where the chunk beats regularly, a still structure loses
            heart = box[2] / self.info.crop_scale
            power = beat_at(beat, (box[0], box[1], heart, heart),
                            w / beat.shape[1], h / beat.shape[0])
            score *= self._beat_weight(power)
        return box, score

    def _beat_weight(self, power: float) -> float:
        """Score factor of a place whose beat power (share of the strongest) is `power`."""
        return min(1.0, power / self.beat_gate)

    def _refine(self, sample: np.ndarray, box: tuple[float, float, float]
                ) -> tuple[tuple[float, float, float], float]:
        """`refine` fine passes on a candidate crop: (box, mean confidence of the last pass)."""
        largest = float(max(sample.shape[1:3]))
        score = 0.0
        for _ in range(self.refine):
            crops, (x0, y0, m) = crop_frames(sample, *box)
            prob = self.predict_small(self._normalise(crops, self.size), FINE)
            found = heart_boxes(prob, self.threshold, 1)
            if not found:
                return box, 0.0
            score = float(frame_confidence(prob, self.threshold).mean())
            fx, fy, fw, fh = found[0]
            k = m / self.size
            edge = (fx - fw / 2 <= 1 or fy - fh / 2 <= 1 or fx + fw / 2 >= self.size - 1
                    or fy + fh / 2 >= self.size - 1)
            side = box[2] * GROW if edge else max(fw * k, fh * k, MIN_BOX_PX) * self.info.crop_scale
            box = (x0 + fx * k, y0 + fy * k, min(side, largest))
        return box, score

    def segment(self, frames: np.ndarray, fps: float | None = None, previous: Box | None = None
                ) -> ChunkSegmentation:
        """Segment a chunk of frames (T, H, W[, C]) of any dtype.

        `fps` (frames/s; None = unknown) lets the beat guide the search (and sets the span of
        a three-channel model's motion plane); `previous` is the `box` of the same video's
        previous chunk (None for the first), a candidate crop for this one.
        """
        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        box = self.locate(frames, fps, previous) if self.coarse_size else None
        return self.segment_at(frames, box, fps)

    def segment_at(self, frames: np.ndarray, box: Box | None, fps: float | None = None
                   ) -> ChunkSegmentation:
        """Segment a chunk of frames (T, H, W[, C]) in the crop `box` (from `locate` or
        `locate_video`); None: the whole frames (at coarse_size, for a two-pass model). `fps`
        sets the span of a three-channel model's motion plane."""
        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        height, width = frames.shape[1:3]
        if not self.coarse_size:
            small = prepare_input(frames, self.size, self.low_percentile, self.high_percentile)
            prob = self.predict_small(small.astype(np.float32, copy=False))
            return self._result(restore_geometry(prob, height, width), prob, None)
        if box is None:  # nothing found: whole frames at the coarse size
            prob = self.coarse_pass(frames, self.motion_plane(frames, fps))
            return self._result(restore_geometry(prob, height, width), prob, None)
        crops, (x0, y0, n) = crop_frames(frames, *box)
        prob = self.predict_small(self._normalise(crops, self.size))
        out = np.zeros((len(frames), height, width), dtype=np.float32)
        ix0, iy0 = max(x0, 0), max(y0, 0)
        ix1, iy1 = min(x0 + n, width), min(y0 + n, height)
        out[:, iy0:iy1, ix0:ix1] = restore_geometry(prob, n, n)[:, iy0 - y0:iy1 - y0,
                                                                ix0 - x0:ix1 - x0]
        return self._result(out, prob, box)

    def _result(self, native: np.ndarray, network: np.ndarray, box: Box | None
                ) -> ChunkSegmentation:
        return ChunkSegmentation(native, frame_confidence(network, self.threshold), box,
                                 self.threshold)

    def predict(self, frames: np.ndarray, fps: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Frames (T, H, W[, C]) -> (prob (T, H, W) float32 at native geometry, confidence (T,)):
        `segment` of one chunk on its own (threshold prob with `self.threshold`)."""
        found = self.segment(frames, fps)
        return found.prob, found.confidence

    def predict_chunks(self, chunks: Sequence[np.ndarray] | Callable[[], Iterable[np.ndarray]],
                       fps: float | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(prob, confidence) of each chunk of one video, as the pipeline segments them: where
        `locate_video` places it. `chunks`: the chunks, or a function returning a fresh iterator
        over them (so that a long video need not be held in memory)."""
        source = chunks if callable(chunks) else (lambda kept=list(chunks): kept)
        boxes = self.locate_video(source, fps)
        for chunk, box in zip(source(), boxes, strict=True):
            found = self.segment_at(chunk, box, fps)
            yield found.prob, found.confidence

    def masks(self, frames: np.ndarray, fps: float | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Frames -> (masks (T, H, W) bool at native geometry, confidence (T,))."""
        prob, confidence = self.predict(frames, fps)
        return prob > self.threshold, confidence
