"""The correction loop's steps as plain functions (no napari, no Qt).

analyze --save-masks -> correct masks -> `save_corrections` (``corrected/`` of the result
folder, read by ``adapt``) -> `adapt_command` -> `analyze_command` with the adapted model.
Commands run in a child process (`Job`), so a long adapt leaves the viewer responsive and
can be stopped; their output is read line by line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..io.corrections import read_corrections, write_corrections
from ..io.result_folder import ResultFolder, read_masks

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_frames(text: str) -> list[int]:
    """Frame indices (from 0) written as ``3, 10-12 20``: sorted, unique; '' gives [].

    Raises ValueError naming the first part that is not an index or a range a-b (a <= b).
    """
    frames: set[int] = set()
    for part in re.split(r"[,;\s]+", re.sub(r"\s*-\s*", "-", text.strip())):
        if not part:
            continue
        if part.isdigit():
            frames.add(int(part))
            continue
        match = _RANGE.match(part)
        if match is None or int(match[1]) > int(match[2]):
            raise ValueError(f"{part!r} is not a frame index or a range such as 10-12")
        frames.update(range(int(match[1]), int(match[2]) + 1))
    return sorted(frames)


def changed_frames(original: np.ndarray, edited: np.ndarray) -> list[int]:
    """Frames (from 0) whose ventricle differs between two (T, H, W) mask stacks of any dtype
    (nonzero is ventricle; the label values themselves do not matter)."""
    original, edited = np.asarray(original), np.asarray(edited)
    if original.shape != edited.shape:
        raise ValueError(f"masks are {original.shape} but the edited labels {edited.shape}")
    differs = ((original != 0) != (edited != 0)).reshape(len(original), -1).any(axis=1)
    return [int(i) for i in np.flatnonzero(differs)]


def frames_to_save(original: np.ndarray, edited: np.ndarray, *, corrected: Iterable[int] = (),
                   listed: Iterable[int] = ()) -> list[int]:
    """The frames whose edited mask goes to ``corrected/``: those that differ from the
    analysis' masks, those corrected before (so the folder keeps what the labels now show)
    and those `listed` (frames the user checked and found right). Raises ValueError for a
    listed frame past the end."""
    listed = sorted(set(listed))
    late = [f for f in listed if not 0 <= f < len(edited)]
    if late:
        raise ValueError(f"frame {late[0]} is not one of the {len(edited)} frames (0-"
                         f"{len(edited) - 1})")
    return sorted({*changed_frames(original, edited), *corrected, *listed})


def save_corrections(folder: str | Path, edited: np.ndarray, *, listed: Iterable[int] = ()
                     ) -> list[int]:
    """Write the frames of `edited` ((T, H, W) labels, nonzero is ventricle) chosen by
    `frames_to_save` into ``folder/corrected/`` (`io.corrections.write_corrections`); returns
    the frames written, [] when nothing differs and nothing is listed."""
    folder = Path(folder)
    original = read_masks(folder)
    frames = frames_to_save(original, edited, corrected=read_corrections(folder),
                            listed=listed)
    write_corrections(folder, {f: np.asarray(edited[f]) != 0 for f in frames})
    return frames


def default_folders(folder: str | Path) -> tuple[Path, Path, Path]:
    """(annotations, model, re-analysis) folders for the result folder `folder`.

    The annotations are the whole analysis output folder ``RUN`` (every video in it with
    corrected frames); the model goes to ``RUN_model`` and the re-analysis to
    ``RUN_adapted`` beside it.
    """
    run = Path(folder).resolve().parent
    return run, run.with_name(f"{run.name}_model"), run.with_name(f"{run.name}_adapted")


def _medaka_heart() -> list[str]:
    return [sys.executable, "-m", "medaka_heart"]


def adapt_command(data: str | Path, model: str | Path, *, minutes: float | None = None,
                  steps: int | None = None, holdout: float | None = None,
                  init: str | Path | None = None) -> list[str]:
    """``medaka-heart adapt DATA -o MODEL ...`` as an argument list (this Python's package);
    None leaves an option at adapt's default."""
    command = [*_medaka_heart(), "adapt", str(data), "-o", str(model)]
    for flag, value in (("--init", init), ("--minutes", minutes), ("--steps", steps),
                        ("--holdout", holdout)):
        if value is not None:
            command += [flag, str(value)]
    return [*command, "--no-progress"]


def analyze_command(result: ResultFolder, out: str | Path, model: str | Path) -> list[str]:
    """``medaka-heart analyze VIDEO -o OUT --model MODEL --save-masks`` for the video of
    `result`, with the frame rate and pixel size its analysis was given by hand (if any)."""
    command = [*_medaka_heart(), "analyze", str(result.video), "-o", str(out),
               "--model", str(model), "--save-masks", "--no-progress"]
    if result.fps_source == "user" and result.fps is not None:
        command += ["--fps", repr(result.fps)]
    if result.pixel_size_source == "user" and result.pixel_size_um is not None:
        command += ["--pixel-size", repr(result.pixel_size_um)]
    return command


class CommandError(RuntimeError):
    """A command that failed or was stopped; the message ends with its last output lines."""


class Job:
    """A command run in a child process whose output (stdout and stderr) is read by line.

    Iterate `lines()` (in a worker thread) to run it; `stop()` (from any thread) ends it.
    """

    def __init__(self, command: Sequence[str], *, tail: int = 8):
        self.command = [str(c) for c in command]
        self._tail: deque[str] = deque(maxlen=tail)
        self._process: subprocess.Popen[str] | None = None
        self._stopped = False

    def lines(self) -> Iterator[str]:
        """Run the command, yielding its output lines; raises CommandError when it exits with
        an error or was stopped."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env
                              ) as process:
            self._process = process
            try:
                if self._stopped:  # stop() came before the process existed
                    process.terminate()
                assert process.stdout is not None
                for line in process.stdout:
                    line = line.rstrip()
                    self._tail.append(line)
                    yield line
                code = process.wait()
            finally:
                self.stop()  # a generator closed early ends its process
        if self._stopped:
            raise CommandError(f"{self._what()} stopped")
        if code != 0:
            raise CommandError(f"{self._what()} failed (exit status {code}): "
                               + " | ".join(t for t in self._tail if t.strip()))

    def stop(self) -> None:
        """End the command (terminate, then kill after 10 s); no-op when it has finished."""
        process = self._process
        if process is None:
            self._stopped = True
            return
        if process.poll() is None:
            self._stopped = True
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _what(self) -> str:
        if self.command[1:3] == ["-m", "medaka_heart"] and len(self.command) > 3:
            return f"medaka-heart {self.command[3]}"
        return Path(self.command[0]).name
