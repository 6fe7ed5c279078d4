"""One Kiwi per worker process.

A Kiwi costs ~5 s (1.8 s to build, ~3.4 s for its first analysis, which loads the rest of
its model) and ~300 MB, and cannot be pickled, so it is built once per
worker in `KiwiPlugin.setup()` and tasks take it from their worker. Workers that join the
cluster later get the plugin from the scheduler and build their own. Outside a
distributed worker (plain `dask.compute`, a notebook, a unit test) `get_kiwi()` builds one
lazily per process. The plugin also sizes the tokenizer's thread pool to the worker.
"""

from __future__ import annotations

import os
import threading
from typing import Any

PLUGIN_NAME = "dask-prep-kiwi"

_local_kiwi: dict[tuple, Any] = {}
_local_lock = threading.Lock()
builds = 0  # how many Kiwi objects this process built (checked by the tests)


def build_kiwi(num_threads: int = 1, model_type: str | None = None) -> Any:
    global builds
    from kiwipiepy import Kiwi

    builds += 1
    kwargs = {"num_workers": num_threads}
    if model_type:
        kwargs["model_type"] = model_type
    return Kiwi(**kwargs)


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
        self.kiwi = build_kiwi(self.num_threads, self.model_type)
        # Kiwi loads parts of its model on the first call (seconds): pay that here, not in a task.
        self.kiwi.tokenize("키위를 미리 깨운다.")

    def teardown(self, worker: Any) -> None:
        self.kiwi = None

    def __getstate__(self) -> dict:
        # Only the settings travel; each worker builds its own Kiwi.
        return {"num_threads": self.num_threads, "model_type": self.model_type, "kiwi": None}


def get_kiwi(num_threads: int = 1, model_type: str | None = None) -> Any:
    """The Kiwi of this worker (from the plugin) or of this process (built lazily)."""
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(PLUGIN_NAME)
    except (ImportError, ValueError):
        plugin = None
    if plugin is not None and plugin.kiwi is not None:
        return plugin.kiwi
    key = (num_threads, model_type)
    with _local_lock:
        if key not in _local_kiwi:
            _local_kiwi[key] = build_kiwi(num_threads, model_type)
        return _local_kiwi[key]
