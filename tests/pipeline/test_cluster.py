"""Unit tests of the LocalCluster layout and housekeeping: no cluster is started."""

from __future__ import annotations


def test_default_cluster_layout_fills_the_cores():
    from dask_prep.pipeline.cluster import CORES_PER_WORKER, ClusterOptions

    assert CORES_PER_WORKER == 2
    assert ClusterOptions().layout(cores=2) == (1, 2)  # the measured winner on 2 cores
    assert ClusterOptions().layout(cores=16) == (8, 2)
    assert ClusterOptions().layout(cores=1) == (1, 1)
    assert ClusterOptions().layout(cores=3) == (1, 2)
    # Given the workers, each Kiwi takes the cores left to it; given Kiwi threads, the workers follow.
    assert ClusterOptions(n_workers=2).layout(cores=2) == (2, 1)
    assert ClusterOptions(n_workers=1).layout(cores=8) == (1, 8)
    assert ClusterOptions(n_workers=4).layout(cores=2) == (4, 1)
    assert ClusterOptions(kiwi_threads=1).layout(cores=4) == (4, 1)
    assert ClusterOptions(n_workers=3, kiwi_threads=5).layout(cores=2) == (3, 5)


def test_local_cluster_housekeeping_settings():
    from dask_prep.pipeline.cluster import ClusterOptions, local_cluster_config

    quiet = local_cluster_config(ClusterOptions())
    assert quiet == {
        "distributed.admin.tick.interval": "500ms",
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # glibc's defaults for Kiwi
    }
    assert local_cluster_config(ClusterOptions(worker_profile=True))["distributed.worker.profile.enabled"] is True


def test_closing_worker_heartbeat_error_is_dropped_and_nothing_else(caplog):
    """distributed logs a heartbeat cut off by the worker's own close as an ERROR traceback."""
    import logging

    from distributed.core import Status

    from dask_prep.pipeline.cluster import QuietWorkerShutdown

    class StandInWorker:  # only its status is read
        status = Status.running

    worker = StandInWorker()
    logger = logging.getLogger("distributed.worker")
    before = list(logger.filters)
    QuietWorkerShutdown().setup(worker)
    try:

        def heartbeat_fails() -> None:
            try:
                raise OSError("Stream is closed")
            except OSError:
                logger.exception("Failed to communicate with scheduler during heartbeat.")

        with caplog.at_level(logging.INFO, logger="distributed.worker"):
            heartbeat_fails()  # a running worker: a real failure, kept
            worker.status = Status.closing
            heartbeat_fails()  # its own close cut it off: dropped
            logger.error("Worker stream died during communication")  # anything else: kept
            worker.status = Status.closed
            heartbeat_fails()
        messages = [r.getMessage() for r in caplog.records if r.name == "distributed.worker"]
        assert messages == [
            "Failed to communicate with scheduler during heartbeat.",
            "Worker stream died during communication",
        ]
    finally:
        logger.filters[:] = before
