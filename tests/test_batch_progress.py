"""Progress: a bar on a terminal, one log line per video elsewhere, everything in run.log."""

from __future__ import annotations

import io
import logging

from medaka_heart.run.progress import Progress, run_log


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_without_terminal_and_run_log(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="medaka_heart")
    with run_log(tmp_path / "run.log"):
        progress = Progress(2, stream=io.StringIO())
        assert progress.bar is None
        progress.update("v0: 8 beats")
        progress.update("v1.avi: not a readable video", failed=True)
        progress.close()
    assert [r.getMessage() for r in caplog.records] == ["[1/2] v0: 8 beats",
                                                        "[2/2] v1.avi: not a readable video"]
    assert caplog.records[1].levelno == logging.ERROR
    text = (tmp_path / "run.log").read_text()
    assert "v0: 8 beats" in text
    assert "ERROR" in text
    assert not logging.getLogger("medaka_heart").handlers  # handler removed afterwards


def test_bar_on_a_terminal_keeps_run_log_complete(tmp_path):
    terminal = FakeTerminal()
    with run_log(tmp_path / "run.log"):
        progress = Progress(3, stream=terminal)
        assert progress.bar is not None
        for i in range(3):
            progress.update(f"v{i}: ok")
        progress.close()
    assert "3/3" in terminal.getvalue()
    assert [f"v{i}: ok" in (tmp_path / "run.log").read_text() for i in range(3)] == [True] * 3
