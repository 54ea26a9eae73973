"""The error of every reader: a file that cannot be read as a video, frames or an image."""

from __future__ import annotations


class VideoError(ValueError):
    """A video cannot be read; the message names the file and the problem."""
