"""Decode ahead: a video's chunks read in a background thread while the last one is worked on.

Decoders (OpenCV, tifffile) and the network runtimes release the GIL, so reading the next
chunk overlaps the work on this one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

AHEAD = 1  # chunks decoded ahead at most (memory: this many chunks more)
POLL_S = 0.1  # how often a blocked reader thread checks whether it was stopped


def prefetched(items: Iterable[T], ahead: int = AHEAD) -> Iterator[T]:
    """`items` in order, produced up to `ahead` items early by a background thread.

    An exception raised while producing an item is raised here, in its place in the
    sequence. Leaving early (break, an error, closing this iterator) stops the thread and
    closes the source iterator (so a decoder releases its file) before returning.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="medaka-heart-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()
