"""Matplotlib figures drawn with the Agg backend, never through pyplot.

A bare `Figure` attached to a `FigureCanvasAgg` renders without a display and without global
state: pyplot's figure registry is not thread-safe (Dask workers analyse several videos in
threads) and `matplotlib.use` would switch the backend of a user's interactive session.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

DPI = 100


def agg_figure(width_in: float, height_in: float, **kwargs: Any):
    """A new matplotlib Figure on an Agg canvas (constrained layout unless told otherwise)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kwargs.setdefault("layout", "constrained")
    fig = Figure(figsize=(width_in, height_in), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig, *, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (no software tag or time: the same figure, the same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def save_png(fig, path: str | Path, *, dpi: int = DPI) -> Path:
    """Write the figure to `path` as PNG, whole or not at all (`io.atomic`)."""
    from ..io.atomic import write_bytes_atomic

    return write_bytes_atomic(path, png_bytes(fig, dpi=dpi))
