"""Where jobs run: in this process, in local worker processes, or on a Dask cluster.

Every executor takes a function `fn(item, threads)` and a list of items, and yields
`(index, result)` as jobs finish, in any order. `threads` is the CPU threads a job may use
without oversubscribing its machine. A job that could not deliver a result (its worker
process died, the cluster lost it) yields a `TaskLost` instead: nothing is silently dropped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

log = logging.getLogger(__name__)

Task = Callable[[Any, "int | None"], Any]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class TaskLost:
    """A job whose result never came back, and why."""

    message: str


class Executor(Protocol):
    def run(self, fn: Task, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """(index into items, fn's result or TaskLost), as jobs finish."""


def usable_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(n_jobs: int) -> int:
    """Worker processes for `n_jobs` videos: one per usable core, never more than videos."""
    return max(1, min(n_jobs, usable_cores()))


def threads_per_worker(workers: int) -> int:
    """Threads each of `workers` processes may use: usable cores // workers (>= 1)."""
    return max(1, usable_cores() // max(1, workers))


class SerialExecutor:
    """Jobs one after the other in this process (no start-up cost; the default for 1 worker)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, fn: Task, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            try:
                result = fn(item, self.threads)
            except Exception as exc:
                result = TaskLost(f"{type(exc).__name__}: {exc}")
            yield i, result


PARENT_POLL_S = 0.5  # how often a worker checks that the run that started it is alive


def _init_worker(threads: int) -> None:
    """Limit native thread pools of a fresh worker before numpy/torch/OpenCV start them, and
    make it die with its parent."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    die_with_parent()


def die_with_parent() -> None:
    """End this process when the one that started it dies (a kill -9 too), so no worker goes
    on writing into an output folder that a rerun may take: the kernel's parent-death signal
    on Linux, and everywhere a watchdog thread that sees the parent change."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="medaka-heart-parent-watch", daemon=True).start()


class ProcessExecutor:
    """Jobs in `workers` local processes (spawned: safe with torch and OpenCV).

    At most `workers` jobs are in flight. If a worker process dies (out of memory, a crash
    in native code), the pool is rebuilt and each job that was in flight is run again alone,
    so that only the job that kills its worker is reported lost.
    """

    def __init__(self, workers: int, threads: int | None = None):
        self.workers = max(1, workers)
        self.threads = threads if threads is not None else threads_per_worker(self.workers)

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads,))

    def run(self, fn: Task, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        pending = deque(range(len(items)))
        suspects: deque[int] = deque()  # in flight when a worker died: rerun one at a time
        inflight: dict[Any, int] = {}
        solo = False  # the job in flight is a suspect running alone
        pool = self._pool()
        try:
            while pending or suspects or inflight:
                if suspects and not inflight:
                    i, solo = suspects.popleft(), True
                    inflight[pool.submit(fn, items[i], self.threads)] = i
                while not suspects and not solo and pending and len(inflight) < self.workers:
                    i = pending.popleft()
                    inflight[pool.submit(fn, items[i], self.threads)] = i
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:
                        result = TaskLost(f"{type(exc).__name__}: {exc}")
                    yield inflight.pop(future), result
                if not inflight:
                    solo = False
                if broken:
                    lost = list(inflight.values())
                    inflight.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._pool()
                    if solo:
                        log.warning("a worker process died while analysing job %d", lost[0])
                        yield lost[0], TaskLost("worker process died while analysing it "
                                                "(out of memory or a crash in native code)")
                    else:
                        log.warning("a worker process died; rerunning its %d job(s) one by one",
                                    len(lost))
                        suspects.extend(lost)
                    solo = False
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def dask_threads(cores: int, processes_on_host: int, slots: int) -> int:
    """Threads one task may use: the host's cores shared between its worker processes, and
    each worker's share between its task slots (nthreads); at least 1."""
    return max(1, cores // max(1, processes_on_host) // max(1, slots))


def _host(address: str) -> str:
    return urlparse(address).hostname or address


def _on_dask_worker(fn: Task, item: Any, processes: Mapping[str, int]) -> Any:
    """Run `fn` on a Dask worker with its fair share of the host's cores (`dask_threads`);
    `processes` counts the worker processes of each host, as the scheduler saw them."""
    from distributed import get_worker

    worker = get_worker()
    return fn(item, dask_threads(usable_cores(), processes.get(_host(worker.address), 1),
                                 worker.state.nthreads))


class DaskExecutor:
    """Jobs as tasks on an existing Dask distributed cluster.

    address : scheduler address (tcp://host:8786), scheduler file (*.json) or a Client.

    The workers write results straight into the output folder, which must therefore be on a
    file system they share with this machine. A task whose worker dies is rescheduled by
    Dask (up to its `distributed.scheduler.allowed-failures`); one that raises is retried
    `retries` times; after that it is reported as lost, never dropped.
    """

    def __init__(self, address: Any, retries: int = 1):
        self.address = address
        self.retries = retries

    def run(self, fn: Task, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from distributed import Client, as_completed

        own = not hasattr(self.address, "submit")
        if own and str(self.address).endswith(".json"):  # a scheduler file (dask-jobqueue, MPI)
            client = Client(scheduler_file=str(self.address), set_as_default=False)
        elif own:
            client = Client(self.address, set_as_default=False)
        else:
            client = self.address
        try:
            token = uuid.uuid4().hex[:8]
            processes = Counter(_host(a) for a in client.scheduler_info()["workers"])
            futures = {client.submit(_on_dask_worker, fn, item, dict(processes), pure=False,
                                     retries=self.retries,
                                     key=f"medaka-heart-{token}-{i}"): i
                       for i, item in enumerate(items)}
            for future in as_completed(futures, loop=client.loop):
                i = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # KilledWorker, lost connection, ...
                    result = TaskLost(f"Dask task failed: {type(exc).__name__}: {exc}")
                future.release()
                yield i, result
        finally:
            if own:
                client.close()
