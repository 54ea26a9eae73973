"""Progress over videos: a bar on a terminal, plain log lines elsewhere, and `OUT/run.log`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger("medaka_heart.batch")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def run_log(path: Path) -> Iterator[Path]:
    """Copy the package's log records (INFO and up) to `path` (appended) while inside."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger("medaka_heart")
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()


class Progress:
    """Counts finished videos; a tqdm bar on a terminal, else one INFO line per video."""

    def __init__(self, total: int, *, enabled: bool = True, stream=None):
        stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self.bar = None
        if enabled and total > 1 and getattr(stream, "isatty", lambda: False)():
            self.bar = tqdm(total=total, desc="videos", unit="video", file=stream)

    def update(self, message: str, *, failed: bool = False) -> None:
        """One video finished; `message` is its one-line outcome."""
        self.done += 1
        level = logging.ERROR if failed else logging.INFO
        if self.bar is not None:
            self.bar.update(1)
            if failed:  # errors are shown above the bar as they happen
                self.bar.write(message, file=sys.stderr)
            for handler in _file_handlers():  # every outcome still goes to run.log
                handler.handle(log.makeRecord(log.name, level, __file__, 0, "%s", (message,),
                                              None))
        else:
            log.log(level, "[%d/%d] %s", self.done, self.total, message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _file_handlers() -> list[logging.Handler]:
    logger = logging.getLogger("medaka_heart")
    return [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
