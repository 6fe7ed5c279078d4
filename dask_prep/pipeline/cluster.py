"""The cluster a run computes on: a LocalCluster or a running scheduler, and the workers' plugins.

`start_client` starts (or reaches) it with one Kiwi per worker (`register_kiwi`);
`stop_client` closes what it started. None of this changes the dataset.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dask
from distributed import WorkerPlugin

from dask_prep.analysis.kiwi import KiwiPlugin, fork_workers_from_warm_kiwi
from dask_prep.io import storage


class ClusterError(RuntimeError):
    """The cluster cannot be reached or started."""


# Cores per LocalCluster worker by default: one worker process per two cores, whose Kiwi
# analyses each partition in batch on two threads. On the 2-core benchmark machine this was
# as fast as one single-threaded worker per core (within the host's noise), with less CPU
# and half the memory (one Kiwi to build, one set of imports); benchmarks/HISTORY.md.
CORES_PER_WORKER = 2


@dataclass
class ClusterOptions:
    """Where to compute. None of this changes the dataset.

    Unset, a LocalCluster has one worker per `CORES_PER_WORKER` cores, each with a Kiwi of
    that many threads. Given only `n_workers`, each worker's Kiwi gets the cores left to it;
    given only `kiwi_threads`, there is one worker per that many cores. With `scheduler`
    the workers are already there; `kiwi_threads` (default 1) sets their Kiwi's threads.
    """

    scheduler: str | None = None  # address of a running scheduler; None = a LocalCluster
    n_workers: int | None = None
    threads_per_worker: int = 1
    kiwi_threads: int | None = None  # Kiwi's own threads per worker (batch analysis when > 1)
    memory_limit: str = "auto"
    # This host only by default: the dashboard shows logs, tracebacks and task data.
    dashboard_address: str = "127.0.0.1:8787"
    worker_profile: bool = False  # distributed's statistical profiler (the dashboard's Profile page)
    kiwi: bool = True  # False (`derive`): the workers build no Kiwi
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise `ClusterError` naming the first option a cluster could not start with (before one starts)."""
        for name in ("n_workers", "threads_per_worker", "kiwi_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ClusterError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
        if self.scheduler is None and not is_memory_size(self.memory_limit):
            raise ClusterError(
                f"--memory-limit {self.memory_limit!r} is not a memory size: give e.g. 4GiB, 4000MB, "
                "a fraction of the host's memory such as 0.5, 0 for none, or auto"
            )

    def layout(self, cores: int | None = None) -> tuple[int, int]:
        """(worker processes, Kiwi threads per worker) of a LocalCluster on `cores` cores."""
        cores = cores or os.cpu_count() or 1
        if self.n_workers and self.kiwi_threads:
            return self.n_workers, self.kiwi_threads
        if self.n_workers:
            return self.n_workers, max(1, cores // self.n_workers)
        kiwi_threads = self.kiwi_threads or min(CORES_PER_WORKER, cores)
        return max(1, cores // kiwi_threads), kiwi_threads


def is_memory_size(limit: Any) -> bool:
    """Whether distributed's own parser takes a worker memory limit (and finds it not negative)."""
    from distributed.worker_memory import parse_memory_limit

    quiet = logging.getLogger(f"{__name__}.memory_limit")  # its warnings come again when the cluster starts
    quiet.propagate = False
    try:
        parsed = parse_memory_limit(limit, 1, logger=quiet)
    except (ValueError, TypeError, OverflowError):
        return False
    return parsed is None or parsed >= 0


def start_client(options: ClusterOptions, meanwhile: Callable[[], Any] | None = None) -> Any:
    """A client on a running scheduler or on a new LocalCluster of worker processes.

    `meanwhile()` runs in the calling thread while the cluster starts and its workers build
    Kiwi (seconds, during which a LocalCluster's worker leaves a core idle): the client's own
    start-up (loading the tokenizer, imports) fits there. If it raises, the client and its
    cluster are closed before the error goes on.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="dask-prep-start") as pool:
        starting = pool.submit(_start_client_deaf_to_ctrl_c, options)
        try:
            if meanwhile is not None:
                meanwhile()
            return starting.result()
        except BaseException:
            if starting.exception() is None:  # waits for the start; Ctrl-C again abandons it
                stop_client(starting.result())
            raise


def _start_client_deaf_to_ctrl_c(options: ClusterOptions) -> Any:
    """`_start_client` in a thread (never the main one) that blocks SIGINT.

    Ctrl-C at a terminal sends SIGINT to its whole foreground process group, which holds a
    LocalCluster's worker processes too: each would end with a `KeyboardInterrupt`
    traceback while this process was still closing them in order. A blocked signal stays
    blocked in the threads this one starts (the cluster's event loop, which spawns the
    workers, also when a nanny restarts one) and in the processes they start, through
    `exec` too; so only this process hears Ctrl-C (in its main thread), and it closes the cluster.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return _start_client(options)


def scheduler_lost(client: Any, exc: BaseException) -> bool:
    """Whether `exc` (raised while computing on `client`) means that the scheduler is gone.

    distributed cancels every future of a client whose scheduler connection closed
    (`FutureCancelledError`, reason "scheduler-connection-lost"); a call made meanwhile fails
    with a closed comm or a timeout, while the client is reconnecting or has given up.
    """
    from distributed.client import FutureCancelledError

    if isinstance(exc, FutureCancelledError) and exc.reason == "scheduler-connection-lost":
        return True
    return isinstance(exc, (OSError, TimeoutError)) and getattr(client, "status", "running") != "running"


def lost_scheduler_error(address: str | None, output_dir: str | None) -> ClusterError:
    """The one line for a run whose scheduler went away (`scheduler_lost`).

    (The client's reconnection, cancelled when it is closed, logs its traceback: `quiet_cluster_logs`.)
    """
    scheduler = f"the Dask scheduler at {address}" if address else "the local Dask scheduler"
    kept = f"finished partitions are kept in {output_dir}; " if output_dir else ""
    return ClusterError(
        f"lost the connection to {scheduler} mid-run; {kept}once a scheduler and its workers are "
        "up, run the same command with --resume to finish"
    )


def quiet_cluster_logs() -> None:
    """After an error reported in one line: what the client and the cluster log while they close
    (a cancelled reconnection's traceback, a nanny killing a worker stuck in a task) is not news."""
    for name in ("distributed", "distributed.client", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def stop_client(client: Any) -> None:
    """Close a client from `start_client`, and its LocalCluster if it started one.

    A client on a running scheduler (`--scheduler`) has no cluster object: that scheduler
    and its workers stay up.
    """
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def local_cluster_config(options: ClusterOptions) -> dict[str, Any]:
    """Dask settings for a LocalCluster: less housekeeping competing with Kiwi for the cores.

    distributed's defaults wake every server's event loop every 20 ms (the "tick" that
    detects a blocked loop) and sample each worker's stack every 10 ms (the statistical
    profiler, which takes the GIL from the task thread). Both cost CPU in every process while
    idle and slow a GIL-bound task beside them (measured: benchmarks/HISTORY.md). A 500-ms tick still
    reports a loop blocked for more than `distributed.admin.tick.limit` (3 s).

    distributed also starts its workers with `MALLOC_TRIM_THRESHOLD_=65536`, so that glibc
    hands freed memory back at once. Setting it makes glibc trim often and turns off its
    adaptive mmap threshold (every allocation of 128 KiB or more costs an mmap and a munmap),
    and Kiwi, which allocates per document, analysed slower in such a worker
    (benchmarks/HISTORY.md). The workers hold no large Python data, so they keep glibc's
    defaults (a value in this process's environment is still passed on).
    """
    return {
        "distributed.admin.tick.interval": "500ms",
        "distributed.worker.profile.enabled": options.worker_profile,
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    }


def _start_client(options: ClusterOptions) -> Any:
    from distributed import Client, LocalCluster

    if options.scheduler:
        kiwi_threads = options.kiwi_threads or 1  # the workers' cores are not known here
        try:
            client = Client(options.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {options.scheduler} ({type(exc).__name__}); check that "
                "`dask scheduler` is running there and the address and port are right, or omit --scheduler "
                "to start a local cluster"
            ) from exc
    else:
        n_workers, kiwi_threads = options.layout()
        settings = local_cluster_config(options)
        if kiwi_threads == 1 and options.kiwi:  # one Kiwi built for all workers, not one each (kiwi_setup)
            settings.update(fork_workers_from_warm_kiwi() or {})
        with dask.config.set(settings), warnings.catch_warnings():  # the workers get settings from their nanny
            # A taken dashboard port moves the dashboard to another one, with a 4-line warning;
            # the CLI prints the dashboard's link (the port it got) on its own line.
            warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=options.threads_per_worker,
                processes=True,
                memory_limit=options.memory_limit,
                dashboard_address=options.dashboard_address,
                **options.extra,
            )
        client = Client(cluster)
        client.register_plugin(QuietWorkerShutdown())
    if options.kiwi:
        register_kiwi(client, kiwi_threads)
    return client


class _HeartbeatCutByClose(logging.Filter):
    """Drops the heartbeat error of a worker whose own shutdown cut that heartbeat off."""

    def __init__(self, worker: Any) -> None:
        super().__init__()
        self._worker = weakref.ref(worker)

    def filter(self, record: logging.LogRecord) -> bool:
        from distributed.core import Status

        message = record.getMessage()
        if message.startswith("Compute Failed"):  # the client reports the task's error itself
            return False
        worker = self._worker()
        closing = worker is None or worker.status in (Status.closing, Status.closed, Status.failed)
        return not (closing and message.startswith(_CUT_BY_CLOSE))


# Logged by a closing worker: a heartbeat its close cut off, a running task its close cancelled.
_CUT_BY_CLOSE = ("Failed to communicate with scheduler during heartbeat", "Async instruction for")


class _WarningsWhileClosing(_HeartbeatCutByClose):
    """Drops what a closing worker logs below ERROR: the tasks it cancels on its way out
    ("Async instruction ... ended with CancelledError"), e.g. after Ctrl-C."""

    def filter(self, record: logging.LogRecord) -> bool:
        from distributed.core import Status

        worker = self._worker()
        closing = worker is None or worker.status in (Status.closing, Status.closed, Status.failed)
        return record.levelno >= logging.ERROR or not closing


class QuietWorkerShutdown(WorkerPlugin):
    """No heartbeat tracebacks from the workers of a LocalCluster while it closes.

    A worker's close tears down its connections while a heartbeat may be in flight, and
    distributed logs that at ERROR with a traceback (dask/distributed#7891): after a clean
    finish or Ctrl-C, a user would see errors that are not errors. Only that message, and
    only once the worker is closing, is dropped, with the warnings of a closing worker about
    the tasks it cancels; every other log line is left alone.
    """

    name = "dask-prep-quiet-shutdown"

    def setup(self, worker: Any) -> None:
        # Not removed in teardown(): the worker's plugins are torn down before its connections close.
        for name in ("distributed.worker", "distributed.worker.state_machine"):
            logging.getLogger(name).addFilter(_HeartbeatCutByClose(worker))
        # On the handlers: they see the records of every distributed logger (a logger's own
        # filter sees only the records logged on it).
        for handler in logging.getLogger("distributed").handlers:
            handler.addFilter(_WarningsWhileClosing(worker))
        # Ctrl-C at a terminal reaches the whole process group: a LocalCluster's worker leaves it
        # to the client, which closes the cluster (the SIGINT block of `_start_client_deaf_to_ctrl_c`
        # does not reach every worker process, e.g. spawned ones). Only the main thread may set it.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class StorageOptionsPlugin(WorkerPlugin):
    """`--storage-options` on every worker, late ones too, as fsspec's per-protocol defaults.

    The options travel through the scheduler like any task data; the backends' own
    configuration (AWS_* variables, credential files) stays where each host has it.
    """

    name = "dask-prep-storage-options"

    def __init__(self, by_protocol: dict[str, dict[str, Any]]) -> None:
        self.by_protocol = by_protocol

    def setup(self, worker: Any) -> None:
        storage.apply(self.by_protocol)


def register_kiwi(client: Any, kiwi_threads: int = 1) -> None:
    """Every current and future worker builds one Kiwi in its plugin `setup()`."""
    client.register_plugin(KiwiPlugin(num_threads=kiwi_threads))
