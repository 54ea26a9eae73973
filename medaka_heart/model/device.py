"""Torch device and CPU thread choice, shared by training and inference."""

from __future__ import annotations

import os

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA if available, then Apple MPS, then CPU; an explicit name is checked."""
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
