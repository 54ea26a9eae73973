"""The model runtime: a model folder loaded for inference, shared by `locate` and `segment`.

`ModelRuntime` loads a model folder or checkpoint (default: the weights shipped in
``medaka_heart/weights/``), picks the device (CUDA, then Apple MPS, then CPU) and the CPU
threads, and runs network-size images through the network in batches (`predict`). A model
folder with a ``localiser/`` model folder inside runs its coarse pass with that network.
`frame_confidence` turns the network's probabilities into a per-frame confidence for QC.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from .config import PreprocessConfig, SegmentConfig
from .model.checkpoint import Checkpoint, ModelInfo, load_checkpoint
from .model.device import cpu_threads, resolve_device
from .model.folder import LOCALISER_DIR, model_hash
from .model.inputs import COARSE, FINE, network_input
from .model.unet import fuse_batchnorm
from .preprocess import normalise_intensity, resize_stack
from .runtime_onnx import ONNX_FILE, OnnxNetwork, OnnxUnavailable, onnx_network

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "weights"
CUDA_BATCH_FACTOR = 4  # larger batches on a GPU
RUNTIMES = ("auto", "torch", "onnx")  # what runs the network (see `ModelRuntime`)


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


def _check_sizes(path: Path, info: ModelInfo, sides: dict[str, int]) -> None:
    """Refuse input sides (px, by name) the network's depth cannot halve to whole pixels."""
    multiple = 2 ** info.architecture.depth
    for name, side in sides.items():
        if side % multiple:
            raise ValueError(f"{path}: {name} {side} is not a multiple of {multiple}")


class ModelRuntime:
    """A model folder's networks on a device, ready to run batches.

    Parameters
    ----------
    config : the [segment] settings used here: model, device, batch_size (frames per forward
        pass, x CUDA_BATCH_FACTOR on CUDA), threads (None = usable cores // workers) and
        threshold (None = the model's tuned threshold).
    preprocess : intensity percentiles; None values (the default) = the model's own.
    workers : processes sharing this machine (to avoid oversubscribing cores).
    """

    def __init__(self, config: SegmentConfig, preprocess: PreprocessConfig | None = None, *,
                 workers: int = 1):
        preprocess = preprocess or PreprocessConfig()
        self.path = Path(config.model) if config.model is not None else default_model_path()
        checkpoint = load_checkpoint(self.path)
        self.info: ModelInfo = checkpoint.info
        self.sha256 = model_hash(self.path)
        self.device = resolve_device(config.device)
        self.size = int(self.info.input_size)  # the model was trained at this size
        self.coarse_size = int(self.info.coarse_size)
        self.low_percentile = (self.info.low_percentile if preprocess.low_percentile is None
                               else preprocess.low_percentile)
        self.high_percentile = (self.info.high_percentile if preprocess.high_percentile is None
                                else preprocess.high_percentile)
        self.threshold = self.info.threshold if config.threshold is None else config.threshold
        _check_sizes(self.path, self.info, {"input size": self.size,
                                            "coarse size": self.coarse_size})
        factor = CUDA_BATCH_FACTOR if self.device.type == "cuda" else 1
        self.batch_size = config.batch_size * factor
        self.threads: int | None = None
        if self.device.type == "cpu":
            self.threads = cpu_threads(config.threads, workers)
            torch.set_num_threads(self.threads)
        self.memory_format = (torch.channels_last if self.device.type == "cpu"
                              else torch.contiguous_format)
        self.net = self._ready(checkpoint)
        self.coarse_net, self.coarse_info = self.net, self.info  # the coarse pass's network
        localiser = self.path / LOCALISER_DIR
        if localiser.is_dir():  # a network of its own
            found = load_checkpoint(localiser)
            _check_sizes(localiser, found.info, {"coarse size": self.coarse_size})
            self.coarse_net, self.coarse_info = self._ready(found), found.info
        self.backend, self._onnx = self._choose_backend(config.runtime, localiser.is_dir())
        log.info("model %s (sha256 %s...) on %s with %s, input %dx%d", self.path,
                 self.sha256[:12], self.device, self.backend, self.size, self.size)

    def _choose_backend(self, wanted: str, has_localiser: bool
                        ) -> tuple[str, dict[float, OnnxNetwork]]:
        """'onnx' (and its networks by pass) or 'torch'. 'auto': ONNX Runtime on the CPU where
        the model folder ships model.onnx and it checks out against torch (`runtime_onnx`),
        else torch; 'onnx': also exported into the cache where missing, and not possible is a
        ValueError; 'torch': torch."""
        if wanted not in RUNTIMES:
            raise ValueError(f"unknown runtime {wanted!r}; choose one of {', '.join(RUNTIMES)}")
        if wanted == "torch" or (wanted == "auto" and self.device.type != "cpu"):
            return "torch", {}
        if self.device.type != "cpu":
            raise ValueError(f"runtime 'onnx' runs on the CPU, not on {self.device}")
        folder = self.path if self.path.is_dir() else None
        nets = {FINE: (self.net, self.info, folder, "fine", self.size)}
        if has_localiser:
            nets[COARSE] = (self.coarse_net, self.coarse_info, self.path / LOCALISER_DIR,
                            "coarse", self.coarse_size)
        found = {}
        try:
            for pass_value, (net, info, own, role, side) in nets.items():
                channels = info.architecture.in_channels
                found[pass_value] = onnx_network(
                    net, own=None if own is None else own / ONNX_FILE,
                    key=f"{self.sha256[:32]}_{role}", in_channels=channels,
                    side=side or self.size, threads=self.threads, export=wanted == "onnx")
        except OnnxUnavailable as exc:
            if wanted == "onnx":
                raise ValueError(f"{self.path}: runtime 'onnx' not possible: {exc}") from None
            shipped = [own / ONNX_FILE for _, _, own, _, _ in nets.values() if own is not None]
            say = log.warning if any(p.is_file() for p in shipped) else log.debug
            say("%s: ONNX Runtime not used (%s); torch runs the network", self.path, exc)
            return "torch", {}
        if not has_localiser:
            found[COARSE] = found[FINE]
        return "onnx", found

    def _ready(self, checkpoint: Checkpoint) -> torch.nn.Module:
        """The checkpoint's network, batch norm fused, on the device, in inference mode."""
        net = fuse_batchnorm(checkpoint.build_model())
        moved = net.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        return moved.eval()  # (torch's stubs lack Module.to's memory_format keyword)

    @property
    def crop_scale(self) -> float:
        """Fine crop side / the heart's extent, as the model was trained."""
        return float(self.info.crop_scale)

    @property
    def coarse_channels(self) -> int:
        """Input channels of the coarse pass's network (3: it takes a motion plane)."""
        return int(self.coarse_info.architecture.in_channels)

    def normalise(self, gray: np.ndarray, size: int) -> np.ndarray:
        """(T, H, W) grayscale -> (T, size, size) float32 network input in [0, 1]."""
        small = resize_stack(gray, size, size)
        out = normalise_intensity(small, self.low_percentile, self.high_percentile)
        return out.astype(np.float32, copy=False)

    @torch.inference_mode()
    def predict(self, images: np.ndarray, pass_value: float = FINE,
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
        onnx = self._onnx.get(COARSE if pass_value == COARSE else FINE)
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]
            if onnx is not None:
                logits = onnx(network_input(batch, channels, pass_value, motion))[:, 0]
                out[start:start + len(batch)] = expit(logits)
                continue
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

    def provenance(self) -> dict[str, Any]:
        """Plain description of the model in use, for result files."""
        return {"model": str(self.path), "model_sha256": self.sha256,
                "device": str(self.device), "input_size": self.size,
                "coarse_size": self.coarse_size, "crop_scale": self.info.crop_scale,
                "architecture": self.info.architecture.to_dict(),
                "localiser": (None if self.coarse_net is self.net
                              else self.coarse_info.architecture.to_dict()),
                "threshold": self.threshold, "threads": self.threads,
                "runtime": self.backend}
