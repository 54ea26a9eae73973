"""Dask: the same results as in-process; a task whose worker dies is reported, not lost."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from test_batch import sources_of, write_video

from medaka_heart.batch import run_batch
from medaka_heart.config import Config
from medaka_heart.options import BatchOptions
from medaka_heart.run.executors import DaskExecutor, TaskLost
from medaka_heart.schema import SUMMARY_COLUMNS

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402  (installed with distributed)


def square_or_die(item, threads):
    if item == "die":
        os._exit(1)
    return item * item


def test_dask_cluster_gives_the_in_process_results(tmp_path):
    pairs = [write_video(tmp_path, f"v{i}", hr_bpm=110 + 15 * i) for i in range(3)]
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    pairs.append((bad, pairs[0][1]))
    names = ["v0", "v1", "v2", "bad"]
    local = run_batch(sources_of(pairs), names, tmp_path / "local", Config(),
                      batch=BatchOptions(workers=1, show_progress=False))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = run_batch(sources_of(pairs), names, tmp_path / "dask", Config(),
                           batch=BatchOptions(scheduler=cluster.scheduler_address,
                                              show_progress=False))
    columns = [c for c in SUMMARY_COLUMNS if c != "error"]
    pd.testing.assert_frame_equal(local[columns], remote[columns])
    assert list(remote["status"]) == ["ok", "ok", "ok", "failed"]
    assert "bad.tif" in remote.loc[3, "error"]
    for name in names[:3]:
        for table in ("frames.csv", "beats.csv"):
            assert (tmp_path / "local" / name / table).read_bytes() == (
                tmp_path / "dask" / name / table).read_bytes()


@pytest.mark.slow
def test_dask_task_whose_worker_dies_is_retried_then_reported():
    """Dask reschedules the tasks of a dead worker (allowed-failures); the one that kills every
    worker it runs on is reported as lost. (A task queued on a dying worker may be charged
    too; it is then reported as well, never dropped.)"""
    items = [1, 3, "die", 4]
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
         distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
         distributed.Client(cluster, set_as_default=False) as client:
        results = list(DaskExecutor(client, retries=0).run(square_or_die, items))
    assert sorted(i for i, _ in results) == [0, 1, 2, 3]  # each task exactly once
    by_index = dict(results)
    assert isinstance(by_index[2], TaskLost)
    assert "KilledWorker" in by_index[2].message
    for i, expected in ((0, 1), (1, 9), (3, 16)):
        assert by_index[i] == expected or "KilledWorker" in by_index[i].message
    assert sum(by_index[i] == e for i, e in ((0, 1), (1, 9), (3, 16))) >= 2


def report_threads(item, threads):
    return threads


def test_each_task_gets_its_worker_process_share_of_the_cores():
    """Two worker processes of one thread on this host: each task gets cores // 2 threads
    (not cores // 1, which ran two threads per worker on two cores)."""
    from medaka_heart.run.executors import dask_threads, usable_cores

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
         distributed.Client(cluster, set_as_default=False) as client:
        results = dict(DaskExecutor(client).run(report_threads, [0, 1, 2, 3]))
    assert set(results.values()) == {max(1, usable_cores() // 2)}
    assert dask_threads(16, 2, 4) == 2
    assert dask_threads(2, 4, 1) == 1
