"""The fine network quantized to int8, run by OpenVINO: about 6 % faster end to end (README).

A model folder may ship ``model.int8.xml`` (+ ``.bin``, an OpenVINO IR) beside ``model.pt``:
its fine network quantized by `scripts/quantize_int8.py`. That script also checks it: on
fine-pass inputs of phantom videos it did not calibrate on, the masks of the int8 network
must agree with torch's to a Dice of at least INT8_MIN_DICE. It then writes the result
beside the file (``model.int8.check.json``: the sha256 of the IR files and of the weights
they were made from, and the Dice). A file is used only where asked for (``[segment] int8 =
true``, ``analyze --int8``), where its check is stamped for these very weights, and only for
the fine pass over every frame (`Segmenter`). It is not the default: on real recordings its
masks differ more from float32's (Dice 0.96-0.98 on two of them) than the project accepts
for a faster runtime (0.99). Locating the heart stays in float32: its choices between
places are near ties in hard videos, and int8 moved two of them in the phantom benchmark.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .io.atomic import write_text_atomic
from .runtime_onnx import file_sha256, openvino_runner

log = logging.getLogger(__name__)

INT8_FILE = "model.int8.xml"  # OpenVINO IR; its weights in model.int8.bin
INT8_STAMP = "model.int8.check.json"
INT8_MIN_DICE = 0.99  # the int8 masks' least Dice with torch's on the check inputs


def int8_files(folder: Path) -> tuple[Path, Path]:
    """(IR file, its weights file) of a model folder's int8 network."""
    xml = folder / INT8_FILE
    return xml, xml.with_suffix(".bin")


def _sums(folder: Path, weights: Path) -> dict[str, str]:
    xml, binary = int8_files(folder)
    return {"xml_sha256": file_sha256(xml), "bin_sha256": file_sha256(binary),
            "weights_sha256": file_sha256(weights)}


def write_int8_stamp(folder: Path, weights: Path, dice: float, checked_on: str) -> None:
    """Record that the folder's int8 network, made from the weights file `weights`, gave
    masks of Dice `dice` with torch's on the inputs `checked_on` describes."""
    stamp = {**_sums(folder, weights), "dice": float(dice), "min_dice": INT8_MIN_DICE,
             "checked_on": checked_on}
    write_text_atomic(folder / INT8_STAMP, json.dumps(stamp, indent=1) + "\n")


def int8_check(folder: Path, weights: Path) -> str | None:
    """None where the folder's int8 network may be used with these weights, else why not."""
    xml, binary = int8_files(folder)
    if not (xml.is_file() and binary.is_file()):
        return f"no {INT8_FILE}"
    try:
        stamp: Any = json.loads((folder / INT8_STAMP).read_text())
        sums = _sums(folder, weights)
    except (OSError, ValueError) as exc:
        return f"no readable check ({exc})"
    if not isinstance(stamp, dict) or any(stamp.get(k) != v for k, v in sums.items()):
        return "its check was made on other files"
    try:
        dice = float(stamp["dice"])
    except (KeyError, TypeError, ValueError):
        return "its check holds no Dice"
    if not dice >= INT8_MIN_DICE:
        return f"its masks' Dice with torch's is {dice:.4f} (< {INT8_MIN_DICE})"
    return None


def int8_network(folder: Path, weights: Path, threads: int | None
                 ) -> Callable[[np.ndarray], np.ndarray] | None:
    """The folder's checked int8 fine network as a function of (N, C, S, S) float32 input ->
    (N, 1, S, S) logits, or None (logged) where there is none to use."""
    why = int8_check(folder, weights)
    if why is None and importlib.util.find_spec("openvino") is None:
        why = "OpenVINO is not installed"
    if why is not None:
        log.debug("%s: int8 network not used: %s", folder, why)
        return None
    try:
        run = openvino_runner(int8_files(folder)[0], threads)
    except Exception as exc:  # a file OpenVINO cannot compile here: the float network runs
        log.warning("%s: int8 network not used: %s: %s", folder, type(exc).__name__, exc)
        return None
    return lambda x: run(np.ascontiguousarray(x, np.float32))
