"""The one way files are written: whole or not at all, with the user's permissions.

A file is written under a hidden temporary name in its own folder, flushed to the disk
(fsync), given the mode the user's umask allows (as `open` would: 0666 & ~umask), and only
then renamed to its name (`os.replace`, atomic on one file system). A write that fails (a
full disk, a lost mount) leaves no file under the final name and raises an `OSError` whose
message names the file. Staging folders get 0777 & ~umask.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def umask() -> int:
    """The process's umask (read without changing it for longer than this call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to the disk; an OSError names the file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe_os_error(exc: OSError) -> str:
    """'no space left on device: OUT/v/montage.png' from an OSError (its text where no file)."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror[0].lower()}{exc.strerror[1:]}: {exc.filename}"
    return str(exc)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; write it whole, and on leaving it becomes `path`.

    The temporary name ends in `path`'s own suffix (``.X.<random>.tmp.avi``), so writers that
    choose the format by suffix (OpenCV, tifffile, numpy) write the right one.
    On an exception the temporary file is removed and `path` is left as it was; an OSError
    (while writing or finishing) is raised again naming `path`, not the temporary name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
            fsync_file(tmp)
            os.chmod(tmp, 0o666 & ~umask())
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path`, whole or not at all."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path`, whole or not at all."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def staging_dir(final: Path) -> Path:
    """A new hidden, empty folder beside `final` with the mode the umask allows."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    os.chmod(stage, 0o777 & ~umask())
    return stage
