"""Torch device and CPU thread choice, shared by training and inference.

`device_type` answers without importing torch where no GPU can be there (no NVIDIA driver,
not Apple silicon), so that a CPU run on ONNX Runtime starts without torch.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present where Linux has the driver loaded


def gpu_possible() -> bool:
    """Whether torch might find a GPU here: an NVIDIA driver, or a Mac with Apple silicon."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return NVIDIA_DRIVER.exists() or shutil.which("nvidia-smi") is not None


def device_type(name: str = "auto") -> str:
    """'cpu', 'cuda' or 'mps' as `resolve_device` would choose, without importing torch where
    'auto' can only mean the CPU."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not gpu_possible()):
        return "cpu"
    return resolve_device(name).type


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA if available, then Apple MPS, then CPU; an explicit name is checked."""
    import torch

    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if name == "mps" and not has_mps:
        raise ValueError("device 'mps' requested but Apple MPS is not available")
    return torch.device(name)


def cpu_threads(threads: int | None = None, workers: int = 1) -> int:
    """Threads for torch on the CPU: `threads` if given, else usable cores // workers (>= 1)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))
