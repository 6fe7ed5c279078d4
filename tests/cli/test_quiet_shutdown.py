"""Issue 29: after Ctrl-C a closing worker's warnings about the tasks it cancels are not shown."""

from __future__ import annotations

import logging

from distributed.core import Status

from dask_prep.pipeline.cluster import QuietWorkerShutdown


class StandInWorker:  # only its status is read
    status = Status.running


def test_a_closing_worker_logs_errors_only():
    worker = StandInWorker()
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    parent = logging.getLogger("distributed")
    handler = Collect()
    parent.addHandler(handler)
    worker_filters = list(logging.getLogger("distributed.worker").filters)
    handler_filters = {h: list(h.filters) for h in parent.handlers}
    try:
        QuietWorkerShutdown().setup(worker)
        logger = logging.getLogger("distributed.worker.state_machine")
        logger.warning("running: a warning")  # a running worker: kept
        worker.status = Status.closing
        logger.warning("Async instruction for <Task cancelled> ended with CancelledError")  # dropped
        logger.error("closing: an error")  # kept
        worker.status = Status.closed
        logger.warning("closed: a warning")  # dropped
    finally:
        for each, filters in handler_filters.items():  # this process's distributed logs stay as they were
            each.filters[:] = filters
        parent.removeHandler(handler)
        logging.getLogger("distributed.worker").filters[:] = worker_filters
    assert seen == ["running: a warning", "closing: an error"]
