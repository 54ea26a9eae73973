"""Executors: every job yields exactly one result; a dying worker costs only its own job."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from medaka_heart.run.executors import (
    ProcessExecutor,
    SerialExecutor,
    TaskLost,
    threads_per_worker,
    usable_cores,
)


def square_or_die(item, threads):
    """Top-level (picklable) task. ('die', folder) kills its worker outright, like an OOM
    kill, once a sibling job has started (so that the sibling is caught in the crash);
    ('slow', n, folder) announces itself and takes a while."""
    if item == "raise":
        raise RuntimeError("boom")
    if isinstance(item, tuple) and item[0] == "die":
        deadline = time.monotonic() + 10
        while not list(Path(item[1]).glob("started-*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(1)
    if isinstance(item, tuple) and item[0] == "slow":
        (Path(item[2]) / f"started-{item[1]}").touch()
        time.sleep(0.3)
        item = item[1]
    return item * item, threads


def test_serial_executor_reports_exceptions_as_lost():
    results = dict(SerialExecutor(threads=3).run(square_or_die, [2, "raise", 4]))
    assert results[0] == (4, 3)
    assert results[2] == (16, 3)
    assert isinstance(results[1], TaskLost)
    assert "RuntimeError: boom" in results[1].message


def test_process_executor_survives_a_dying_worker(tmp_path):
    """The job running beside the one that kills its worker is rerun, not lost."""
    items = [1, 2, ("die", str(tmp_path)), ("slow", 3, str(tmp_path)), 4, 5]
    results = list(ProcessExecutor(2, threads=1).run(square_or_die, items))
    indices = sorted(i for i, _ in results)
    assert indices == list(range(len(items)))  # each job exactly once, none lost silently
    by_index = dict(results)
    assert isinstance(by_index[2], TaskLost)
    assert "worker process died" in by_index[2].message
    assert {i: by_index[i] for i in (0, 1, 3, 4, 5)} == {
        0: (1, 1), 1: (4, 1), 3: (9, 1), 4: (16, 1), 5: (25, 1)}


@pytest.mark.parametrize("workers", [1, 2, 64])
def test_threads_are_split_between_workers(workers):
    assert threads_per_worker(workers) == max(1, usable_cores() // workers)
