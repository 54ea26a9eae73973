"""The model runtime: a model folder loaded for inference, shared by `locate` and `segment`.

`ModelRuntime` reads a model folder or checkpoint (default: the weights shipped in
``medaka_heart/weights/``), picks the device (CUDA, then Apple MPS, then CPU) and the CPU
threads, and runs network-size images through the network in batches (`predict`). On the CPU
it runs the folder's checked ``model.onnx`` with OpenVINO, else ONNX Runtime, where it can
(`runtime_onnx`), without importing torch; torch runs the network everywhere else. A model
folder with a ``localiser/`` model folder inside runs its coarse pass with that network.
`frame_confidence` turns the network's probabilities into a per-frame confidence for QC.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from .config import RUNTIMES, PreprocessConfig, SegmentConfig
from .model.device import cpu_threads, device_type
from .model.folder import LOCALISER_DIR, MODEL_FILE, model_hash
from .model.info import ModelInfo, folder_info
from .model.inputs import COARSE, FINE, beat_planes, network_input, sees_beat
from .preprocess import normalise_intensity, resize_stack
from .runtime_int8 import int8_network
from .runtime_onnx import (
    ONNX_FILE,
    OnnxNetwork,
    OnnxUnavailable,
    check_against_torch,
    installed_engines,
    is_stamped,
    onnx_network,
)

if TYPE_CHECKING:
    import torch

    from .model.checkpoint import Checkpoint
    from .model.unet import UNet

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "weights"
CUDA_BATCH_FACTOR = 4  # larger batches on a GPU


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


def _why(failed: dict[str, str]) -> str:
    """'engine: reason; ...' of the engines that could not run a model."""
    return "; ".join(f"{engine}: {reason}" for engine, reason in failed.items())


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
    config : the [segment] settings used here: model, device, runtime, batch_size (frames per
        forward pass at the fine input size, fewer for larger images; x CUDA_BATCH_FACTOR on
        CUDA), threads (None = usable cores // workers) and threshold (None = the model's tuned
        threshold).
    preprocess : intensity percentiles; None values (the default) = the model's own.
    workers : processes sharing this machine (to avoid oversubscribing cores).

    torch is imported only where it runs a network or checks an ONNX file against one.
    """

    def __init__(self, config: SegmentConfig, preprocess: PreprocessConfig | None = None, *,
                 workers: int = 1):
        preprocess = preprocess or PreprocessConfig()
        self.path = Path(config.model) if config.model is not None else default_model_path()
        self._localiser = self.path / LOCALISER_DIR if (self.path / LOCALISER_DIR).is_dir() \
            else None
        self._checkpoints: dict[Path, Checkpoint] = {}
        self._torch_nets: dict[float, torch.nn.Module] = {}
        self.info: ModelInfo = self._read_info(self.path)
        self.coarse_info = (self.info if self._localiser is None  # the coarse pass's network
                            else self._read_info(self._localiser))
        self.sha256 = model_hash(self.path)
        self.device = device_type(config.device)  # "cpu", "cuda" or "mps"
        self.size = int(self.info.input_size)  # the model was trained at this size
        self.coarse_size = int(self.info.coarse_size)
        self.low_percentile = (self.info.low_percentile if preprocess.low_percentile is None
                               else preprocess.low_percentile)
        self.high_percentile = (self.info.high_percentile if preprocess.high_percentile is None
                                else preprocess.high_percentile)
        self.threshold = self.info.threshold if config.threshold is None else config.threshold
        _check_sizes(self.path, self.info, {"input size": self.size,
                                            "coarse size": self.coarse_size})
        if self._localiser is not None:
            _check_sizes(self._localiser, self.coarse_info, {"coarse size": self.coarse_size})
        factor = CUDA_BATCH_FACTOR if self.device == "cuda" else 1
        self.batch_size = config.batch_size * factor
        self.threads = cpu_threads(config.threads, workers) if self.device == "cpu" else None
        self.backend, self._onnx = self._choose_backend(config.runtime)
        self._int8 = (int8_network(self.path, self.path / MODEL_FILE, self.threads)
                      if config.int8 and self.backend == "openvino" and self.path.is_dir()
                      else None)
        if self.backend == "torch":  # load the networks now: a bad model.pt fails here
            self._torch_net(FINE)
            self._torch_net(COARSE)
        log.info("model %s (sha256 %s...) on %s with %s%s, input %dx%d", self.path,
                 self.sha256[:12], self.device, self.backend,
                 " (fine pass in int8)" if self._int8 is not None else "", self.size, self.size)

    def _read_info(self, path: Path) -> ModelInfo:
        """A model folder's ModelInfo from its config.json where that says it all, else from
        its checkpoint (torch)."""
        info = folder_info(path) if path.is_dir() else None
        return info if info is not None else self._checkpoint(path).info

    def _checkpoint(self, path: Path) -> Checkpoint:
        """The checkpoint of a model folder or file, loaded once (imports torch)."""
        if path not in self._checkpoints:
            from .model.checkpoint import load_checkpoint

            self._checkpoints[path] = load_checkpoint(path)
        return self._checkpoints[path]

    def _torch_net(self, pass_value: float) -> torch.nn.Module:
        """The torch network of a pass (COARSE: the localiser's, if the model has one),
        batch norm fused, on the device, in inference mode; made on first need."""
        own_coarse = self._localiser is not None or COARSE in self._torch_nets
        key = COARSE if pass_value == COARSE and own_coarse else FINE
        if key not in self._torch_nets:
            path = self._localiser if key == COARSE and self._localiser is not None else self.path
            self._torch_nets[key] = self._ready(self._checkpoint(path).build_model())
        return self._torch_nets[key]

    def _ready(self, net: UNet) -> torch.nn.Module:
        """A copy of `net` with batch norm fused, on the device (channels-last on the CPU), in
        inference mode."""
        import torch

        from .model.unet import fuse_batchnorm

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        fmt = torch.channels_last if self.device == "cpu" else torch.contiguous_format
        moved = fuse_batchnorm(net).to(torch.device(self.device), memory_format=fmt)  # type: ignore[call-overload]
        return moved.eval()  # (torch's stubs lack .to's memory_format)

    def with_fine_net(self, net: UNet) -> ModelRuntime:
        """A copy of this runtime whose fine pass runs `net` (same architecture and inputs,
        e.g. self-adapted): by the fine pass's ONNX graph with `net`'s weights swapped in
        where its engine can and the result matches torch within ONNX_TOLERANCE
        (`runtime_onnx.check_against_torch`), else by torch; the coarse pass, which locates
        the heart, runs as before, and the int8 network is not used."""
        import copy

        adapted = copy.copy(self)
        fused = self._ready(net)
        coarse = self._onnx.get(COARSE)
        adapted._onnx = {} if coarse is None else {COARSE: coarse}
        adapted._torch_nets = {FINE: fused}
        if coarse is None:  # torch ran the coarse pass: it keeps the original network
            adapted._torch_nets[COARSE] = self._torch_net(COARSE)
        adapted._int8 = None
        fine = self._onnx.get(FINE)
        if fine is not None:  # an ONNX engine ran the fine pass (on the CPU)
            try:
                swapped = fine.with_weights({name: value.detach().cpu().numpy()
                                             for name, value in fused.state_dict().items()})
                check_against_torch(swapped, fused, self.info.architecture.in_channels,
                                    self.size)
            except Exception as exc:  # differs, or the engine cannot compile it: keep torch
                log.info("the adapted fine pass runs in torch: %s: %s", type(exc).__name__, exc)
            else:
                adapted._onnx[FINE] = swapped
        return adapted

    @property
    def net(self) -> torch.nn.Module:
        """The fine pass's torch network (made on first use)."""
        return self._torch_net(FINE)

    @property
    def coarse_net(self) -> torch.nn.Module:
        """The coarse pass's torch network (the localiser's, if the model has one)."""
        return self._torch_net(COARSE)

    def _choose_backend(self, wanted: str) -> tuple[str, dict[float, OnnxNetwork]]:
        """The runtime (a `runtime_onnx.ENGINES` name or 'torch') and, for an ONNX engine,
        its networks by pass. 'auto': on the CPU the first installed engine (OpenVINO, then
        ONNX Runtime; one whose check is already stamped on the folder's model.onnx first)
        that runs that file checked against torch (`runtime_onnx`), else torch; an engine
        named ('onnx', 'openvino'): that one, exported into the cache where the folder has no
        model.onnx, and not possible is a ValueError; 'torch': torch."""
        if wanted not in RUNTIMES:
            raise ValueError(f"unknown runtime {wanted!r}; choose one of {', '.join(RUNTIMES)}")
        if wanted == "torch" or (wanted == "auto" and self.device != "cpu"):
            return "torch", {}
        if self.device != "cpu":
            raise ValueError(f"runtime {wanted!r} runs on the CPU, not on {self.device}")
        failed: dict[str, str] = {}  # engine: why it cannot run this model
        for engine in (self._stamped_first(installed_engines()) if wanted == "auto"
                       else [wanted]):
            try:
                networks = self._onnx_networks(engine, export=wanted != "auto")
            except OnnxUnavailable as exc:
                failed[engine] = str(exc)
                continue
            if failed:
                log.info("%s: %s not used (%s)", self.path, ", ".join(failed), _why(failed))
            return engine, networks
        if wanted != "auto":
            raise ValueError(f"{self.path}: runtime {wanted!r} not possible: {_why(failed)}")
        shipped = [where / ONNX_FILE for where in (self.path, self._localiser) if where]
        say = log.warning if any(p.is_file() for p in shipped) else log.debug
        say("%s: no ONNX engine used (%s); torch runs the network", self.path,
            _why(failed) or "none installed")
        return "torch", {}

    def _stamped_first(self, engines: list[str]) -> list[str]:
        """`engines` with those already checked on this model's ONNX files first (their
        stamps match: no torch import at start-up), in their own order otherwise."""
        wheres = [w for w in (self.path, self._localiser) if w is not None and w.is_dir()]
        stamped = [e for e in engines if wheres and all(
            is_stamped(w / ONNX_FILE, w / MODEL_FILE, e) for w in wheres)]
        return stamped + [e for e in engines if e not in stamped]

    def _onnx_networks(self, engine: str, export: bool) -> dict[float, OnnxNetwork]:
        """Each pass's network as the model's ONNX file run by `engine` (`onnx_network`);
        OnnxUnavailable where one cannot be."""
        passes = {FINE: (self.path, self.info, "fine", self.size)}
        if self._localiser is not None:
            passes[COARSE] = (self._localiser, self.coarse_info, "coarse", self.coarse_size)
        found = {}
        for pass_value, (where, info, role, side) in passes.items():
            folder = where.is_dir()
            found[pass_value] = onnx_network(
                partial(self._torch_net, pass_value),
                own=where / ONNX_FILE if folder else None,
                weights=where / MODEL_FILE if folder else where,
                key=f"{self.sha256[:32]}_{role}", in_channels=info.architecture.in_channels,
                side=side or self.size, threads=self.threads, export=export, engine=engine)
        if self._localiser is None:
            found[COARSE] = found[FINE]
        return found

    @property
    def crop_scale(self) -> float:
        """Fine crop side / the heart's extent, as the model was trained."""
        return float(self.info.crop_scale)

    @property
    def coarse_channels(self) -> int:
        """Input channels of the coarse pass's network (3: it takes a motion plane)."""
        return int(self.coarse_info.architecture.in_channels)

    @property
    def uses_beat(self) -> bool:
        """Whether the fine pass takes beat planes (`inputs.beat_planes`; four channels)."""
        return sees_beat(int(self.info.architecture.in_channels))

    def fine_input(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(T, n, n) grayscale crops of one place over time -> the fine pass's images
        (T, size, size) float32 and, for beat-plane models, their beat planes (T, 2, size,
        size) (else None)."""
        images = self.normalise(crops, self.size)
        return images, beat_planes(images) if self.uses_beat else None

    def normalise(self, gray: np.ndarray, size: int) -> np.ndarray:
        """(T, H, W) grayscale -> (T, size, size) float32 network input in [0, 1]."""
        small = resize_stack(gray, size, size)
        out = normalise_intensity(small, self.low_percentile, self.high_percentile)
        return out.astype(np.float32, copy=False)

    def predict(self, images: np.ndarray, pass_value: float = FINE,
                motion: np.ndarray | None = None, beat: np.ndarray | None = None,
                int8: bool = False) -> np.ndarray:
        """Network-size input (T, S, S) float32 in [0, 1] -> probabilities (T, S, S) float32.

        `pass_value` fills the pass plane of two-channel models (COARSE or FINE; COARSE runs
        the localiser, if the model has one); `motion` (S, S) the motion plane of three-channel
        models, `beat` (T, 2, S, S) the beat planes of four-channel ones (None = zeros).
        `int8`: a fine pass may run the folder's checked int8 network (`uses_int8`).
        """
        out = np.empty(images.shape, dtype=np.float32)
        info = self.coarse_info if pass_value == COARSE else self.info
        channels = info.architecture.in_channels
        onnx = (self._int8 if int8 and pass_value == FINE and self._int8 is not None
                else self._onnx.get(COARSE if pass_value == COARSE else FINE))
        step = self._batch_for(images.shape[-1])
        if onnx is None:
            return self._predict_torch(images, pass_value, motion, beat, channels, step)
        for start in range(0, len(images), step):
            batch = images[start:start + step]
            planes = None if beat is None else beat[start:start + step]
            logits = onnx(network_input(batch, channels, pass_value, motion, planes))[:, 0]
            out[start:start + len(batch)] = expit(logits)
        return out

    def _batch_for(self, side: int) -> int:
        """Images per forward pass at `side` px: batch_size at the fine input size, fewer for
        larger images (the same pixels per pass), so that the network's working memory does
        not grow with the coarse and closer looks (512 px: 16x the pixels of 128 px)."""
        return max(1, self.batch_size * self.size * self.size // max(1, side * side))

    def _predict_torch(self, images: np.ndarray, pass_value: float, motion: np.ndarray | None,
                       beat: np.ndarray | None, channels: int, step: int) -> np.ndarray:
        """`predict` with torch (mixed precision on CUDA), `step` images per pass."""
        import torch

        out = np.empty(images.shape, dtype=np.float32)
        net = self._torch_net(pass_value)
        cuda = self.device == "cuda"
        fmt = torch.channels_last if self.device == "cpu" else torch.contiguous_format
        with torch.inference_mode():
            for start in range(0, len(images), step):
                batch = images[start:start + step]
                planes = None if beat is None else beat[start:start + step]
                x = torch.from_numpy(network_input(batch, channels, pass_value, motion, planes))
                if cuda:
                    x = x.pin_memory()
                x = x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
                amp = (torch.autocast("cuda", dtype=torch.float16) if cuda
                       else contextlib.nullcontext())
                with amp:
                    prob = torch.sigmoid(net(x).float())
                out[start:start + len(batch)] = prob[:, 0].cpu().numpy()
        return out

    def provenance(self) -> dict[str, Any]:
        """Plain description of the model in use, for result files."""
        return {"model": str(self.path), "model_sha256": self.sha256,
                "device": self.device, "input_size": self.size,
                "coarse_size": self.coarse_size, "crop_scale": self.info.crop_scale,
                "architecture": self.info.architecture.to_dict(),
                "localiser": (None if self._localiser is None
                              else self.coarse_info.architecture.to_dict()),
                "threshold": self.threshold, "threads": self.threads,
                "runtime": self.backend, "int8": self.uses_int8}

    @property
    def uses_int8(self) -> bool:
        """Whether fine passes asked to (`predict(int8=True)`) run the int8 network."""
        return self._int8 is not None
