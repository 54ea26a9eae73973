"""The network as an ONNX file, run by OpenVINO (about 1.3x ONNX Runtime's speed for the small
U-Net on this project's 2-core machine) or ONNX Runtime (about twice torch's), without
importing torch.

A model folder may ship its networks as ``model.onnx`` beside ``model.pt`` (the shipped
weights do; `scripts/export_onnx.py`, `medaka-heart train` and `medaka-heart adapt` write
them). An ONNX file is run by an engine only once that engine has been checked against torch
on it: on fixed random input its probabilities may differ from torch's by at most
ONNX_TOLERANCE. The check leaves a stamp beside the file (``model.check.json``: the sha256 of
the ONNX file and of the weights it was checked against, and each engine's largest
difference); an engine whose check is stamped for these weights is used without torch, any
other is checked first (torch imported for it), and where the check fails or anything else
does, the caller tries the next engine or keeps torch and says why. Asked for explicitly
(``[segment] runtime = "onnx"`` or ``"openvino"``), a network without its file is exported
once per model and machine into the cache folder (MEDAKA_HEART_CACHE, default
``~/.cache/medaka_heart``). Torch stays the reference and the trainer.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import threading
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
ENGINES = {"openvino": "openvino", "onnx": "onnxruntime"}  # engine: its package; preferred first


class OnnxUnavailable(RuntimeError):
    """No ONNX engine can run this network here (not installed, export or check failed)."""


def cache_dir() -> Path:
    """Where exported networks are kept: $MEDAKA_HEART_CACHE, else ~/.cache/medaka_heart."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "medaka_heart"


def file_sha256(path: Path) -> str:
    """sha256 hex digest of one file (remembered while its size and time stamp stay: start-up
    asks for the same files' sums several times)."""
    status = path.stat()
    return _sha256_of(str(path), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """`file_sha256` of a file as it is at this size and time stamp."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(partial(fh.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp_path(onnx_path: Path) -> Path:
    """Where the check stamp of an ONNX file lives (model.onnx -> model.check.json)."""
    return onnx_path.with_name(onnx_path.stem + STAMP_SUFFIX)


def installed_engines() -> list[str]:
    """The ENGINES whose package is installed here, preferred first."""
    return [engine for engine, package in ENGINES.items()
            if importlib.util.find_spec(package) is not None]


def _read_stamp(onnx_path: Path) -> dict[str, Any]:
    """The stamp beside `onnx_path` ({} if none or unreadable); a stamp of before engines
    were named holds ONNX Runtime's check."""
    try:
        stamp = json.loads(stamp_path(onnx_path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stamp, dict):
        return {}
    if not isinstance(stamp.get("engines"), dict):
        stamp["engines"] = {"onnx": stamp.get("largest_probability_difference")}
    return stamp


def write_stamp(onnx_path: Path, weights: Path, engine: str, difference: float) -> None:
    """Record that `engine` ran `onnx_path` within ONNX_TOLERANCE of the weights file
    `weights` (largest probability difference `difference`), beside the checks of other
    engines on the same two files."""
    sums = {"onnx_sha256": file_sha256(onnx_path), "weights_sha256": file_sha256(weights)}
    stamp = _read_stamp(onnx_path)
    same = all(stamp.get(key) == value for key, value in sums.items())
    engines = dict(stamp["engines"]) if same else {}
    engines[engine] = float(difference)
    stamp = {**sums, "engines": engines, "tolerance": ONNX_TOLERANCE}
    if "onnx" in engines:  # where 0.8.1 and earlier read ONNX Runtime's check
        stamp["largest_probability_difference"] = engines["onnx"]
    write_text_atomic(stamp_path(onnx_path), json.dumps(stamp, indent=1) + "\n")


def is_stamped(onnx_path: Path, weights: Path, engine: str = "onnx") -> bool:
    """Whether `onnx_path` carries a stamp of `engine`'s passed check against these very
    weights."""
    stamp = _read_stamp(onnx_path)
    try:
        return (stamp.get("onnx_sha256") == file_sha256(onnx_path)
                and stamp.get("weights_sha256") == file_sha256(weights)
                and float(stamp["engines"].get(engine, np.inf)) <= ONNX_TOLERANCE)
    except (OSError, ValueError, TypeError, KeyError):
        return False


class OnnxNetwork:
    """An ONNX file run by `engine` (see ENGINES) with the call of a torch network on numpy:
    (N, C, S, S) float32 input -> (N, 1, S, S) float32 logits. `threads`: CPU threads
    (None = the engine's own choice). `weights`: initializers replaced by these arrays (by
    name; OpenVINO only, `swap_weights`)."""

    def __init__(self, path: Path, threads: int | None, engine: str = "onnx",
                 weights: dict[str, np.ndarray] | None = None):
        if engine not in ENGINES:
            raise ValueError(f"unknown ONNX engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if weights is not None and engine != "openvino":
            raise OnnxUnavailable(f"{ENGINES[engine]} cannot swap a network's weights")
        self.path, self.engine, self.threads = path, engine, threads
        try:
            self._run = (openvino_runner(path, threads, weights=weights)
                         if engine == "openvino" else _onnxruntime_runner(path, threads))
        except ImportError as exc:
            raise OnnxUnavailable(f"{ENGINES[engine]} is not installed ({exc})") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(x, np.float32))

    def with_weights(self, weights: dict[str, np.ndarray]) -> OnnxNetwork:
        """The same graph and engine with the initializers named in `weights` replaced (e.g.
        by the state dict of a fine-tuned copy of the fused network; the others kept),
        compiled in memory; unchecked (`check_against_torch`)."""
        return OnnxNetwork(self.path, self.threads, self.engine, weights)


def _onnxruntime_runner(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """ONNX Runtime's session on `path`, as a function of the input."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: numpy and OpenCV work in between on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_runner(path: Path, threads: int | None, *,
                    weights: dict[str, np.ndarray] | None = None
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """OpenVINO's CPU plugin on `path` (its initializers named in `weights` replaced by
    those values, `swap_weights`), as a function of the input: in float32 (CPUs with bf16 or
    f16 units would otherwise run in those, far from torch's probabilities), one stream, no
    thread pinning (worker processes share the cores), one inference request per calling
    thread (a request is not thread-safe; Dask workers run videos in threads)."""
    import openvino as ov

    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                              "ENABLE_CPU_PINNING": False, "INFERENCE_PRECISION_HINT": "f32"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    core = ov.Core()
    model: Any = str(path)
    if weights is not None:
        model = core.read_model(str(path))
        swap_weights(model, weights)
    compiled = core.compile_model(model, "CPU", config)
    local = threading.local()

    def run(x: np.ndarray) -> np.ndarray:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        return np.array(request.infer([x])[0])  # a copy: the request reuses its output

    return run


def swap_weights(model: Any, weights: dict[str, np.ndarray]) -> None:
    """Replace, in an OpenVINO model read from an ONNX file, the float32 constant of each
    initializer named in `weights` by that array (cast to float32; the same shape);
    OnnxUnavailable where a name is missing, or a shape or the constant's type differs."""
    import openvino as ov

    constants = {op.get_friendly_name(): op for op in model.get_ops()
                 if op.get_type_name() == "Constant"}
    for name, value in weights.items():
        old = constants.get(name)
        if old is None:
            raise OnnxUnavailable(f"the ONNX graph has no weight named {name!r}")
        array = np.ascontiguousarray(value, np.float32)
        if old.get_output_element_type(0) != ov.Type.f32:
            raise OnnxUnavailable(f"weight {name!r} is {old.get_output_element_type(0)} in the "
                                  "ONNX graph, not float32")
        if tuple(old.get_output_shape(0)) != array.shape:
            raise OnnxUnavailable(f"weight {name!r} is {tuple(old.get_output_shape(0))} in "
                                  f"the ONNX graph, {array.shape} given")
        new = ov.op.Constant(array)
        new.set_friendly_name(name)
        for target in list(old.output(0).get_target_inputs()):
            target.replace_source_output(new.output(0))


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
    """Largest |probability difference| between the ONNX file's engine and torch on fixed
    random input (2, in_channels, side, side); raises OnnxUnavailable above ONNX_TOLERANCE."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).random((2, in_channels, side, side),
                                                        dtype=np.float32))
    with torch.inference_mode():
        reference = torch.sigmoid(net(x)).numpy()
    found = expit(onnx(x.numpy()))
    difference = float(np.abs(found - reference).max())
    if not difference <= ONNX_TOLERANCE:
        raise OnnxUnavailable(f"{onnx.path}: {ENGINES[onnx.engine]} differs from torch by "
                              f"{difference:.2g} (tolerance {ONNX_TOLERANCE:g})")
    return difference


def export_checked(net: torch.nn.Module, in_channels: int, side: int, path: Path,
                   weights: Path) -> dict[str, float]:
    """Export `net` to `path` and `check_engines` on it."""
    export_onnx(net, in_channels, side, path)
    return check_engines(net, in_channels, side, path, weights)


def check_engines(net: torch.nn.Module, in_channels: int, side: int, path: Path,
                  weights: Path) -> dict[str, float]:
    """Check every installed engine on the ONNX file `path` against torch's `net` and stamp
    those that pass as matching the weights file `weights`: {engine: largest probability
    difference}; OnnxUnavailable where none passes."""
    passed, problems = {}, []
    for engine in installed_engines():
        try:
            passed[engine] = check_against_torch(OnnxNetwork(path, None, engine), net,
                                                 in_channels, side)
        except Exception as exc:  # not installed, differs, or the engine cannot compile it
            problems.append(f"{ENGINES[engine]}: {exc}")
            continue
        write_stamp(path, weights, engine, passed[engine])
    if not passed:
        raise OnnxUnavailable("; ".join(problems) or "no ONNX engine is installed")
    return passed


def onnx_network(torch_net: Callable[[], Any], *, own: Path | None, weights: Path, key: str,
                 in_channels: int, side: int, threads: int | None, export: bool,
                 engine: str = "onnx") -> OnnxNetwork:
    """The network whose weights file is `weights` as an ONNX file run by `engine`: `own` (a
    model folder's ``model.onnx``), else, with `export`, the export cached under `key` (made
    now if missing). A file whose stamp holds this engine's check against these weights is
    used as it is; any other is checked against `torch_net()` (the fused network on the CPU,
    made only then) and stamped where it passes and its folder can be written. Raises
    OnnxUnavailable where none can be used."""
    if engine not in ENGINES or importlib.util.find_spec(ENGINES[engine]) is None:
        raise OnnxUnavailable(f"{ENGINES.get(engine, engine)} is not installed")
    cached = cache_dir() / "onnx" / f"{key}.onnx"
    candidates = [p for p in (own, cached if export else None) if p is not None]
    problems = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            onnx = OnnxNetwork(path, threads, engine)
            if not is_stamped(path, weights, engine):
                difference = check_against_torch(onnx, torch_net(), in_channels, side)
                _try_stamp(path, weights, engine, difference)
            return onnx
        except OnnxUnavailable as exc:
            problems.append(str(exc))
        except Exception as exc:  # a broken or foreign file: export it again below
            problems.append(f"{path}: {type(exc).__name__}: {exc}")
    if not export:
        raise OnnxUnavailable("; ".join(problems) or "no model.onnx in the model folder")
    try:
        log.info("exporting the network to ONNX (once per model and machine): %s", cached)
        net = torch_net()
        export_onnx(net, in_channels, side, cached)
        onnx = OnnxNetwork(cached, threads, engine)
        write_stamp(cached, weights, engine, check_against_torch(onnx, net, in_channels, side))
        return onnx
    except OnnxUnavailable as exc:
        problems.append(str(exc))
        raise OnnxUnavailable("; ".join(problems)) from None
    except Exception as exc:  # the exporter's many failure kinds: keep torch
        problems.append(f"export: {type(exc).__name__}: {exc}")
        raise OnnxUnavailable("; ".join(problems)) from None


def _try_stamp(path: Path, weights: Path, engine: str, difference: float) -> None:
    """Stamp a checked file where its folder can be written (a read-only install cannot)."""
    try:
        write_stamp(path, weights, engine, difference)
    except OSError as exc:
        log.debug("%s: check not stamped (%s)", path, exc)


def export_model_folder(folder: str | Path, *, export: bool = True
                        ) -> list[tuple[Path, dict[str, float]]]:
    """Export a model folder's networks (its localiser's too) to ``model.onnx`` beside their
    weights, each checked against torch with every installed engine and stamped: [(file,
    {engine: largest probability difference})]. `export` False checks and stamps the files
    already there (a model.onnx missing is skipped). Export needs the exporter (the
    ``export`` extra: onnx, onnxscript); raises OnnxUnavailable or the exporter's own error
    where it cannot."""
    from .model.checkpoint import load_checkpoint
    from .model.folder import LOCALISER_DIR, MODEL_FILE
    from .model.unet import fuse_batchnorm

    folder = Path(folder)
    top = load_checkpoint(folder).info
    done = []
    for where, side in ((folder, top.input_size),
                        (folder / LOCALISER_DIR, top.coarse_size or top.input_size)):
        path = where / ONNX_FILE
        if not (where / MODEL_FILE).is_file() or not (export or path.is_file()):
            continue
        checkpoint = load_checkpoint(where)
        net = fuse_batchnorm(checkpoint.build_model()).eval()
        channels = checkpoint.info.architecture.in_channels
        check = export_checked if export else check_engines
        done.append((path, check(net, channels, side, path, where / MODEL_FILE)))
    return done
