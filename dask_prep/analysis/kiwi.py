"""One Kiwi per worker process.

A Kiwi takes seconds to build and warm (its first analysis loads the rest of its model),
holds hundreds of MB and cannot be pickled (benchmarks/HISTORY.md), so it is built once per
worker in `KiwiPlugin.setup()` and tasks take it from their worker. Workers that join the
cluster later get the plugin from the scheduler and build their own. Outside a
distributed worker (plain `dask.compute`, a notebook, a unit test) `get_kiwi()` builds one
lazily per process. The plugin also sizes the tokenizer's thread pool to the worker.

A LocalCluster of single-threaded Kiwis forks its workers from one process that built and
warmed a Kiwi once (`fork_workers_from_warm_kiwi`): the workers start without building
their own and share its model's memory pages. A Kiwi of more threads cannot be forked
(its thread pool, started on first use, would not survive the fork): those workers build
their own, as do workers that join later or restart, and those of `dask worker`.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

from dask_prep.workers import current_worker

PLUGIN_NAME = "dask-prep-kiwi"
# Set in the client for the forkserver it starts: the model type of the Kiwi to prebuild there.
FORK_KIWI_ENV = "DASK_PREP_FORK_KIWI"
# What the forkserver imports, in order, so that each worker forked from it need not: the
# modules a worker's tasks and plugins come from, then the warm Kiwi (`kiwi_forkserver`).
FORKSERVER_PRELOAD = [
    "distributed",
    "dask_prep.pipeline.graph",
    "dask_prep.pipeline.partition",
    "dask_prep.analysis.kiwi_forkserver",
]

# This process's Kiwi per (threads, model type): built lazily, or inherited from the forkserver.
_local_kiwi: dict[tuple, Any] = {}
_local_lock = threading.Lock()
builds = 0  # how many Kiwi objects this process built (checked by the tests)


def _new_kiwi(num_threads: int, model_type: str | None) -> Any:
    from kiwipiepy import Kiwi

    kwargs = {"num_workers": num_threads}
    if model_type:
        kwargs["model_type"] = model_type
    return Kiwi(**kwargs)


def build_kiwi(num_threads: int = 1, model_type: str | None = None) -> Any:
    global builds
    builds += 1
    return _new_kiwi(num_threads, model_type)


def _warm_up(kiwi: Any) -> None:
    # Kiwi loads parts of its model on the first call (seconds): pay that up front, not in a task.
    kiwi.tokenize("키위를 미리 깨운다.")


def prebuild_for_fork(model_type: str | None = None) -> None:
    """In the forkserver (`dask_prep.analysis.kiwi_forkserver`): a warm single-threaded Kiwi to inherit.

    Not counted in `builds`: the workers forked from here did not build it.
    """
    kiwi = _new_kiwi(1, model_type)
    _warm_up(kiwi)
    _local_kiwi[(1, model_type)] = kiwi


def fork_workers_from_warm_kiwi(model_type: str | None = None) -> dict[str, Any] | None:
    """Dask settings under which a LocalCluster's workers fork from a process holding a warm Kiwi.

    Returns None where there is no forkserver (not on Linux/macOS). The forkserver is this
    process's own (multiprocessing's), started with the first worker: it imports
    distributed and dask_prep and builds one Kiwi (once), and each worker forked
    from it starts without building its own. It outlives the cluster, holding its Kiwi, until
    this process ends. If the preload does not happen, workers build their own Kiwi.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    import distributed.utils

    os.environ[FORK_KIWI_ENV] = model_type or ""
    # distributed sets the forkserver's preload once, to itself and its optional packages
    # (importing them all here); ours replaces it, so it is marked as done.
    distributed.utils._forkserver_preload_set = True
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    return {"distributed.worker.multiprocessing-method": "forkserver"}


try:  # distributed is optional for the plain-Python stage functions
    from distributed import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object  # type: ignore[misc,assignment]


class KiwiPlugin(WorkerPlugin):
    """Builds the worker's Kiwi in `setup()`; tasks read it via `get_kiwi()`."""

    name = PLUGIN_NAME

    def __init__(self, num_threads: int = 1, model_type: str | None = None) -> None:
        self.num_threads = num_threads
        self.model_type = model_type
        self.kiwi: Any = None

    def setup(self, worker: Any) -> None:
        # The tokenizer's Rust thread pool (rayon) would otherwise start one thread per core
        # of the host in every worker process, as OpenMP would without distributed's
        # `distributed.nanny.pre-spawn-environ`. Sized here to the cores this worker is
        # given, before stage 2 first starts the pool; a value set by the user is kept.
        os.environ.setdefault("RAYON_NUM_THREADS", str(max(worker.state.nthreads, self.num_threads)))
        self.kiwi = _process_kiwi(self.num_threads, self.model_type)
        _warm_up(self.kiwi)  # seconds for a new Kiwi, milliseconds for one inherited warm

    def teardown(self, worker: Any) -> None:
        self.kiwi = None

    def __getstate__(self) -> dict:
        # Only the settings travel; each worker has its own Kiwi (built, or inherited warm).
        return {"num_threads": self.num_threads, "model_type": self.model_type, "kiwi": None}


def get_kiwi(num_threads: int = 1, model_type: str | None = None) -> Any:
    """The Kiwi of this worker (from the plugin) or of this process (built lazily)."""
    worker = current_worker()
    plugin = None if worker is None else worker.plugins.get(PLUGIN_NAME)
    if plugin is not None and plugin.kiwi is not None:
        return plugin.kiwi
    return _process_kiwi(num_threads, model_type)


def _process_kiwi(num_threads: int, model_type: str | None) -> Any:
    """This process's Kiwi of these settings: inherited from the forkserver, or built once."""
    key = (num_threads, model_type)
    with _local_lock:
        if key not in _local_kiwi:
            _local_kiwi[key] = build_kiwi(num_threads, model_type)
        return _local_kiwi[key]
