"""The network through ONNX Runtime: about twice torch's speed for the small U-Net on a CPU.

A model folder may ship its networks as ``model.onnx`` beside ``model.pt`` (the shipped
weights do; `scripts/export_onnx.py` and `medaka-heart train` write them). `onnx_network`
checks such a file against torch on fixed random input before it is used: where the
probabilities differ by more than ONNX_TOLERANCE, or anything fails, the caller keeps torch
and says why. Asked for explicitly (``[segment] runtime = "onnx"``), a network without its
file is exported once per model and machine into the cache folder (MEDAKA_HEART_CACHE,
default ``~/.cache/medaka_heart``). Torch stays the reference and the trainer.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from .io.atomic import atomic_path

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4  # largest probability difference from torch accepted
ONNX_FILE = "model.onnx"
CACHE_ENV = "MEDAKA_HEART_CACHE"
EXPORT_MAX_SIDE = 1024  # px: the exported graph takes any batch and sides up to this


class OnnxUnavailable(RuntimeError):
    """ONNX Runtime cannot run this network here (not installed, export or check failed)."""


def cache_dir() -> Path:
    """Where exported networks are kept: $MEDAKA_HEART_CACHE, else ~/.cache/medaka_heart."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "medaka_heart"


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


def onnx_network(net: torch.nn.Module, *, own: Path | None, key: str, in_channels: int,
                 side: int, threads: int | None, export: bool) -> OnnxNetwork:
    """The ONNX Runtime form of `net` (a fused network on the CPU): `own` (a model folder's
    ``model.onnx``) if it passes the check against torch; with `export`, else the export
    cached under `key` (made now if missing). Raises OnnxUnavailable where none can be used."""
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
            check_against_torch(onnx, net, in_channels, side)
            return onnx
        except OnnxUnavailable as exc:
            problems.append(str(exc))
        except Exception as exc:  # a broken or foreign file: export it again below
            problems.append(f"{path}: {type(exc).__name__}: {exc}")
    if not export:
        raise OnnxUnavailable("; ".join(problems) or "no model.onnx in the model folder")
    try:
        log.info("exporting the network to ONNX (once per model and machine): %s", cached)
        export_onnx(net, in_channels, side, cached)
        onnx = OnnxNetwork(cached, threads)
        check_against_torch(onnx, net, in_channels, side)
        return onnx
    except OnnxUnavailable:
        raise
    except Exception as exc:  # the exporter's many failure kinds: keep torch
        problems.append(f"export: {type(exc).__name__}: {exc}")
        raise OnnxUnavailable("; ".join(problems)) from None
