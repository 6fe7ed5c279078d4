"""The cluster a run computes on: a LocalCluster or a running scheduler, and the workers' plugins.

`start_client` starts (or reaches) it with one Kiwi per worker (`register_kiwi`);
`stop_client` closes what it started. None of this changes the dataset.
"""

from __future__ import annotations

import logging
import os
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

    def layout(self, cores: int | None = None) -> tuple[int, int]:
        """(worker processes, Kiwi threads per worker) of a LocalCluster on `cores` cores."""
        cores = cores or os.cpu_count() or 1
        if self.n_workers and self.kiwi_threads:
            return self.n_workers, self.kiwi_threads
        if self.n_workers:
            return self.n_workers, max(1, cores // self.n_workers)
        kiwi_threads = self.kiwi_threads or min(CORES_PER_WORKER, cores)
        return max(1, cores // kiwi_threads), kiwi_threads


def start_client(options: ClusterOptions, meanwhile: Callable[[], Any] | None = None) -> Any:
    """A client on a running scheduler or on a new LocalCluster of worker processes.

    `meanwhile()` runs in the calling thread while the cluster starts and its workers build
    Kiwi (seconds, during which a LocalCluster's worker leaves a core idle): the client's own
    start-up (loading the tokenizer, imports) fits there. If it raises, the client and its
    cluster are closed before the error goes on.
    """
    if meanwhile is None:
        return _start_client(options)
    with ThreadPoolExecutor(1, thread_name_prefix="dask-prep-start") as pool:
        starting = pool.submit(_start_client, options)
        try:
            meanwhile()
            return starting.result()
        except BaseException:
            if starting.exception() is None:  # waits for the start; Ctrl-C again abandons it
                stop_client(starting.result())
            raise


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
        with dask.config.set(settings):  # the worker processes get it from their nanny
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

        worker = self._worker()
        closing = worker is None or worker.status in (Status.closing, Status.closed, Status.failed)
        return not (closing and record.getMessage().startswith("Failed to communicate with scheduler during heartbeat"))


class QuietWorkerShutdown(WorkerPlugin):
    """No heartbeat tracebacks from the workers of a LocalCluster while it closes.

    A worker's close tears down its connections while a heartbeat may be in flight, and
    distributed logs that at ERROR with a traceback (dask/distributed#7891): after a clean
    finish or Ctrl-C, a user would see errors that are not errors. Only that message, and
    only once the worker is closing, is dropped; every other log line is left alone.
    """

    name = "dask-prep-quiet-shutdown"

    def setup(self, worker: Any) -> None:
        # Not removed in teardown(): the worker's plugins are torn down before its connections close.
        logging.getLogger("distributed.worker").addFilter(_HeartbeatCutByClose(worker))


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
