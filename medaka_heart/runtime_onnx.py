"""The network through ONNX Runtime: about twice torch's speed for the small U-Net on a CPU,
and a start without importing torch.

A model folder may ship its networks as ``model.onnx`` beside ``model.pt`` (the shipped
weights do; `scripts/export_onnx.py`, `medaka-heart train` and `medaka-heart adapt` write
them). An ONNX file is used only once it has been checked against torch: on fixed random
input its probabilities may differ from torch's by at most ONNX_TOLERANCE. The check leaves a
stamp beside the file (``model.check.json``: the sha256 of the ONNX file and of the weights it
was checked against); a file whose stamp matches its weights is used without torch, any other
is checked first (torch imported for it), and where the check fails or anything else does,
the caller keeps torch and says why. Asked for explicitly (``[segment] runtime = "onnx"``), a
network without its file is exported once per model and machine into the cache folder
(MEDAKA_HEART_CACHE, default ``~/.cache/medaka_heart``). Torch stays the reference and the
trainer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from .io.atomic import atomic_path, write_text_atomic

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4  # largest probability difference from torch accepted
ONNX_FILE = "model.onnx"
CACHE_ENV = "MEDAKA_HEART_CACHE"
EXPORT_MAX_SIDE = 1024  # px: the exported graph takes any batch and sides up to this
STAMP_SUFFIX = ".check.json"  # model.onnx -> model.check.json


class OnnxUnavailable(RuntimeError):
    """ONNX Runtime cannot run this network here (not installed, export or check failed)."""


def cache_dir() -> Path:
    """Where exported networks are kept: $MEDAKA_HEART_CACHE, else ~/.cache/medaka_heart."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "medaka_heart"


def file_sha256(path: Path) -> str:
    """sha256 hex digest of one file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(partial(fh.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp_path(onnx_path: Path) -> Path:
    """Where the check stamp of an ONNX file lives (model.onnx -> model.check.json)."""
    return onnx_path.with_name(onnx_path.stem + STAMP_SUFFIX)


def write_stamp(onnx_path: Path, weights: Path, difference: float) -> None:
    """Record that `onnx_path` matched the weights file `weights` within ONNX_TOLERANCE."""
    stamp = {"onnx_sha256": file_sha256(onnx_path), "weights_sha256": file_sha256(weights),
             "largest_probability_difference": float(difference),
             "tolerance": ONNX_TOLERANCE}
    write_text_atomic(stamp_path(onnx_path), json.dumps(stamp, indent=1) + "\n")


def is_stamped(onnx_path: Path, weights: Path) -> bool:
    """Whether `onnx_path` carries a stamp of a passed check against these very weights."""
    try:
        stamp = json.loads(stamp_path(onnx_path).read_text())
        return (isinstance(stamp, dict)
                and stamp.get("onnx_sha256") == file_sha256(onnx_path)
                and stamp.get("weights_sha256") == file_sha256(weights)
                and float(stamp.get("largest_probability_difference", np.inf)) <= ONNX_TOLERANCE)
    except (OSError, ValueError, TypeError):
        return False


class OnnxNetwork:
    """An ONNX Runtime session with the call of a torch network on numpy: (N, C, S, S) float32
    input -> (N, 1, S, S) float32 logits."""

    def __init__(self, path: Path, threads: int | None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from None
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # no busy-waiting between runs: numpy and OpenCV work in between on the same cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        self.path = path
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, np.float32)})[0]


def export_onnx(net: torch.nn.Module, in_channels: int, side: int, path: Path) -> Path:
    """Write `net` (in eval mode, on the CPU) to `path` as ONNX with a dynamic batch and
    dynamic sides (multiples of 16, up to EXPORT_MAX_SIDE), whole or not at all."""
    import torch

    example = torch.rand(2, in_channels, side, side)
    n = torch.export.Dim("n", min=1, max=1 << 16)
    h = torch.export.Dim("h", min=1, max=EXPORT_MAX_SIDE // 16)
    w = torch.export.Dim("w", min=1, max=EXPORT_MAX_SIDE // 16)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # its notes on absent torchvision ops
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), input_names=["x"],
                                        output_names=["logits"], dynamo=True, verbose=False,
                                        dynamic_shapes={"x": {0: n, 2: 16 * h, 3: 16 * w}})
        if program is None:
            raise OnnxUnavailable("the ONNX exporter returned nothing")
        with atomic_path(path) as tmp:
            program.save(str(tmp))
    finally:
        exporter_log.setLevel(level)
    return path


def check_against_torch(onnx: OnnxNetwork, net: torch.nn.Module, in_channels: int,
                        side: int) -> float:
    """Largest |probability difference| between ONNX Runtime and torch on fixed random
    input (2, in_channels, side, side); raises OnnxUnavailable above ONNX_TOLERANCE."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).random((2, in_channels, side, side),
                                                        dtype=np.float32))
    with torch.inference_mode():
        reference = torch.sigmoid(net(x)).numpy()
    found = expit(onnx(x.numpy()))
    difference = float(np.abs(found - reference).max())
    if not difference <= ONNX_TOLERANCE:
        raise OnnxUnavailable(f"{onnx.path}: differs from torch by {difference:.2g} "
                              f"(tolerance {ONNX_TOLERANCE:g})")
    return difference


def export_checked(net: torch.nn.Module, in_channels: int, side: int, path: Path,
                   weights: Path) -> float:
    """Export `net` to `path`, check it against torch and stamp it as matching the weights
    file `weights`; the largest probability difference (OnnxUnavailable above tolerance)."""
    export_onnx(net, in_channels, side, path)
    difference = check_against_torch(OnnxNetwork(path, None), net, in_channels, side)
    write_stamp(path, weights, difference)
    return difference


def onnx_network(torch_net: Callable[[], Any], *, own: Path | None, weights: Path, key: str,
                 in_channels: int, side: int, threads: int | None, export: bool
                 ) -> OnnxNetwork:
    """The ONNX Runtime form of a network whose weights file is `weights`: `own` (a model
    folder's ``model.onnx``), else, with `export`, the export cached under `key` (made now if
    missing). A file stamped as checked against these weights is used as it is; any other is
    checked against `torch_net()` (the fused network on the CPU, made only then) and stamped
    where it passes and its folder can be written. Raises OnnxUnavailable where none can be
    used."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        raise OnnxUnavailable("onnxruntime is not installed")
    cached = cache_dir() / "onnx" / f"{key}.onnx"
    candidates = [p for p in (own, cached if export else None) if p is not None]
    problems = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            onnx = OnnxNetwork(path, threads)
            if not is_stamped(path, weights):
                difference = check_against_torch(onnx, torch_net(), in_channels, side)
                _try_stamp(path, weights, difference)
            return onnx
        except OnnxUnavailable as exc:
            problems.append(str(exc))
        except Exception as exc:  # a broken or foreign file: export it again below
            problems.append(f"{path}: {type(exc).__name__}: {exc}")
    if not export:
        raise OnnxUnavailable("; ".join(problems) or "no model.onnx in the model folder")
    try:
        log.info("exporting the network to ONNX (once per model and machine): %s", cached)
        export_checked(torch_net(), in_channels, side, cached, weights)
        return OnnxNetwork(cached, threads)
    except OnnxUnavailable:
        raise
    except Exception as exc:  # the exporter's many failure kinds: keep torch
        problems.append(f"export: {type(exc).__name__}: {exc}")
        raise OnnxUnavailable("; ".join(problems)) from None


def _try_stamp(path: Path, weights: Path, difference: float) -> None:
    """Stamp a checked file where its folder can be written (a read-only install cannot)."""
    try:
        write_stamp(path, weights, difference)
    except OSError as exc:
        log.debug("%s: check not stamped (%s)", path, exc)


def export_model_folder(folder: str | Path) -> list[tuple[Path, float]]:
    """Export a model folder's networks (its localiser's too) to ``model.onnx`` beside their
    weights, each checked against torch and stamped: [(file, largest probability difference)].
    Needs the exporter (the ``export`` extra: onnx, onnxscript); raises OnnxUnavailable or the
    exporter's own error where it cannot."""
    from .model.checkpoint import load_checkpoint
    from .model.folder import LOCALISER_DIR, MODEL_FILE
    from .model.unet import fuse_batchnorm

    folder = Path(folder)
    top = load_checkpoint(folder).info
    done = []
    for where, side in ((folder, top.input_size),
                        (folder / LOCALISER_DIR, top.coarse_size or top.input_size)):
        if not (where / MODEL_FILE).is_file():
            continue
        checkpoint = load_checkpoint(where)
        net = fuse_batchnorm(checkpoint.build_model()).eval()
        channels = checkpoint.info.architecture.in_channels
        path = where / ONNX_FILE
        done.append((path, export_checked(net, channels, side, path, where / MODEL_FILE)))
    return done
