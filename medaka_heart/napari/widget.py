"""The dock widget: save corrected masks, adapt the model, re-analyse (napari + magicgui).

Pick the ``masks`` Labels layer of a result folder opened with this plugin, correct masks
with napari's brush and eraser, then:

1. **Save corrections**: the frames whose mask you changed (and those listed under *also
   save frames*) go to the result folder's ``corrected/`` (`loop.save_corrections`);
2. **Adapt model**: ``medaka-heart adapt ANNOTATIONS -o MODEL`` (every result folder with
   corrected frames under ANNOTATIONS, by default the whole analysis output folder);
3. **Re-analyse**: ``medaka-heart analyze VIDEO -o OUT --model MODEL --save-masks``; the
   new result opens in the viewer.

Adapt and analyze run in a child process, read by a worker thread: the viewer stays
responsive, their output and errors appear in the widget's log, and *Stop* ends them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import napari
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    TextEdit,
)
from superqt.utils import create_worker

from ..adapt import DEFAULT_MINUTES, HOLDOUT_FRACTION
from ..io.corrections import is_result_folder
from ..io.result_folder import find_result, read_result_folder
from . import loop
from .reader import META_KEY

PLUGIN = "medaka-heart"  # the npe2 manifest's name
FOLDER = FileDialogMode.EXISTING_DIRECTORY
logger = logging.getLogger(__name__)


class CorrectionWidget(Container):
    """Save corrections, adapt and re-analyse (see the module docstring)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.job: loop.Job | None = None
        self._worker: Any = None
        self.layer = ComboBox(choices=self._result_layers, nullable=True,
                              tooltip="The masks (Labels) layer of a result folder")
        self.frames = LineEdit(tooltip="Frames (from 0) to save as they are, besides the "
                                       "changed ones, e.g. 3, 10-12")
        self.data = FileEdit(mode=FOLDER, tooltip="Folder whose result folders with corrected "
                                               "frames adapt learns from")
        self.model = FileEdit(mode=FOLDER, tooltip="Model folder adapt writes")
        self.minutes = FloatSpinBox(value=DEFAULT_MINUTES, min=0.1, max=600.0, step=0.5,
                                    tooltip="Time budget of adapt, minutes")
        self.steps = SpinBox(value=0, min=0, max=1_000_000,
                             tooltip="A fixed number of training steps (0: fill the budget)")
        self.holdout = FloatSpinBox(value=HOLDOUT_FRACTION, min=0.0, max=0.9, step=0.05,
                                    tooltip="Share held out to score the model before/after")
        self.out = FileEdit(mode=FOLDER, tooltip="Output folder of the re-analysis")
        self.save_button = PushButton(text="Save corrections")
        self.adapt_button = PushButton(text="Adapt model")
        self.analyze_button = PushButton(text="Re-analyse with the adapted model")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = Label(value="")
        self.log = TextEdit(value="")
        self.log.read_only = True
        rows = [("result masks", self.layer), ("also save frames", self.frames),
                (" ", self.save_button), ("annotations", self.data),
                ("model folder", self.model), ("minutes", self.minutes),
                ("steps", self.steps), ("held out", self.holdout), (" ", self.adapt_button),
                ("re-analysis to", self.out), (" ", self.analyze_button),
                (" ", self.stop_button), ("status", self.status), ("log", self.log)]
        for label, widget in rows:
            widget.label = label
            self.append(widget)
        self.layer.changed.connect(self._layer_chosen)
        self.save_button.changed.connect(self.save)
        self.adapt_button.changed.connect(self.adapt)
        self.analyze_button.changed.connect(self.reanalyse)
        self.stop_button.changed.connect(self.stop)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.native.destroyed.connect(self.stop)
        self._refresh()

    # ------------------------------------------------------------------ state

    def _result_layers(self, *_: Any) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, napari.layers.Labels) and META_KEY in layer.metadata]

    def _refresh(self, *_: Any) -> None:
        """Offer the result layers; choose the newest when none (or a removed one) is chosen."""
        self.layer.reset_choices()
        choices = [c for c in self.layer.choices if c is not None]
        if choices and self.layer.value not in choices:
            self.layer.value = choices[-1]

    def _layer_chosen(self, layer: Any) -> None:
        if layer is None:
            return
        data, model, out = loop.default_folders(self.folder)
        self.data.value, self.model.value, self.out.value = data, model, out

    @property
    def folder(self) -> Path:
        """The result folder of the chosen Labels layer; ValueError when none is chosen."""
        layer = self.layer.value
        if layer is None:
            raise ValueError("open a result folder (analyze --save-masks) with the "
                             f"{PLUGIN} reader and choose its masks layer")
        return Path(layer.metadata[META_KEY]["folder"])

    @property
    def busy(self) -> bool:
        """Whether adapt or analyze is running."""
        return self._worker is not None

    def show_status(self, text: str, *, error: bool = False) -> None:
        """One line of status (red for an error), also appended to the log."""
        self.status.value = text
        self.status.native.setStyleSheet("color: #ff6060" if error else "")
        self.log.native.append(text)
        (logger.warning if error else logger.info)("%s", text)

    # ------------------------------------------------------------------ actions

    def save(self, *_: Any) -> list[int]:
        """Save the changed (and listed) frames of the chosen layer; returns the frames."""
        try:
            listed = loop.parse_frames(self.frames.value)
            frames = loop.save_corrections(self.folder, self.layer.value.data, listed=listed)
        except (OSError, ValueError) as exc:
            self.show_status(f"not saved: {exc}", error=True)
            return []
        if not frames:
            self.show_status("nothing to save: no mask changed and no frame listed")
        else:
            self.show_status(f"saved {len(frames)} corrected frame(s) to "
                             f"{self.folder / 'corrected'}: {_short(frames)}")
        return frames

    def adapt(self, *_: Any) -> None:
        """Run adapt on the annotations folder into the model folder."""
        data = _path(self.data)
        if not any(is_result_folder(p.parent) for p in data.glob("**/provenance.json")):
            self.show_status(f"{data}: no result folder with corrected frames (save "
                             "corrections first)", error=True)
            return
        command = loop.adapt_command(data, _path(self.model), minutes=self.minutes.value,
                                     steps=self.steps.value or None,
                                     holdout=self.holdout.value)
        self._start(command, done=lambda: self.show_status(
            f"adapted model in {self.model.value}; re-analyse to see it at work"))

    def reanalyse(self, *_: Any) -> None:
        """Analyse the chosen result's video again with the adapted model, then open it."""
        model, out = _path(self.model), _path(self.out)
        try:
            if not (model / "model.pt").is_file():
                raise FileNotFoundError(f"{model}: no adapted model here (adapt first)")
            result = read_result_folder(self.folder)
        except (OSError, ValueError) as exc:
            self.show_status(f"cannot re-analyse: {exc}", error=True)
            return
        self._start(loop.analyze_command(result, out, model),
                    done=lambda: self._open(find_result(out, result.video)))

    def stop(self, *_: Any) -> None:
        """End a running adapt or analyze."""
        if self.job is not None:
            self.job.stop()

    # ------------------------------------------------------------------ running

    def _start(self, command: list[str], *, done: Any) -> None:
        if self.busy:
            self.show_status("wait for the running command to finish (or stop it)",
                             error=True)
            return
        self.job = loop.Job(command)
        self.show_status(f"running {' '.join(command[2:])}")
        worker = create_worker(self.job.lines, _ignore_errors=True)
        worker.yielded.connect(self._line)
        worker.errored.connect(lambda exc: self.show_status(str(exc), error=True))
        worker.returned.connect(lambda _: self._then(done))
        worker.finished.connect(lambda *_: self._finished())
        self._worker = worker
        self._set_running(True)
        worker.start()

    def _line(self, line: str) -> None:
        if line.strip():
            self.log.native.append(line)

    def _then(self, done: Any) -> None:
        try:
            done()
        except (OSError, ValueError) as exc:
            self.show_status(str(exc), error=True)

    def _finished(self) -> None:
        self._worker = None
        self.job = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        for button in (self.save_button, self.adapt_button, self.analyze_button):
            button.enabled = not running
        self.stop_button.enabled = running

    def _open(self, folder: Path) -> None:
        self.viewer.open(str(folder), plugin=PLUGIN)
        self.show_status(f"re-analysed: opened {folder}")


def _path(edit: FileEdit) -> Path:
    """A FileEdit's one path (it types its value as maybe several)."""
    return Path(str(edit.value))


def _short(frames: list[int], most: int = 12) -> str:
    shown = ", ".join(map(str, frames[:most]))
    return shown + (f" and {len(frames) - most} more" if len(frames) > most else "")
