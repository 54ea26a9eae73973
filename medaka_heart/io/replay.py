"""Read a video's chunks more than once without decoding them again (when they fit)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

REPLAY_BUDGET_BYTES = 384 * 2**20  # decoded chunks kept for a second read, at most (30 s of
# 640x480 grayscale at 40 frames/s)


def replayable(chunks: Callable[[], Iterable[np.ndarray]],
               budget_bytes: int = REPLAY_BUDGET_BYTES, *, n_frames: int | None = None
               ) -> Callable[[], Iterator[np.ndarray]]:
    """`chunks` as a function whose later calls replay, from memory, the chunks of the first
    complete call if they took at most `budget_bytes`; otherwise every call decodes again.

    `n_frames` (the video's frame count, if known) lets the first chunk tell whether the whole
    video can fit: if not, nothing is kept, so that memory does not grow with the video's
    length up to the budget before letting go.

    Every chunk of a first read is made read-only, so that no reader of one pass can change
    the next (and a write shows up whether the video fits or not).
    """
    kept: list[np.ndarray] = []
    complete = False

    def read() -> Iterator[np.ndarray]:
        nonlocal complete
        if complete:
            yield from kept
            return
        kept.clear()
        used, fits = 0, True
        for chunk in chunks():
            chunk.flags.writeable = False
            if fits and not kept and n_frames and len(chunk):  # the first: can it all fit?
                fits = chunk.nbytes / len(chunk) * n_frames <= budget_bytes
            if fits:
                used += chunk.nbytes
                fits = used <= budget_bytes
                if fits:
                    kept.append(chunk)
                else:
                    kept.clear()
            yield chunk
        complete = fits

    return read
