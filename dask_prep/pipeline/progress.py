"""How far a run is: `Progress`, which the client tells, and the workers' events inside partitions.

A finished partition's stats reach `Progress.update`; while stage 1 analyses, each task
also sends `(judged, kept)` of its partition as distributed events (`ProgressEvents`), which
the client passes to `Progress.advance` (`dask_prep.pipeline.compute`). Only a `Progress` that
overrides `advance` has the workers send them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dask_prep.workers import current_worker

if TYPE_CHECKING:
    from dask_prep.output.shards import RowsDone
    from dask_prep.stats import AnalysisStats, TokenizeStats

# A task sends at most one progress event per this many seconds (and one as each of its
# partitions ends): a few hundred bytes a second per worker thread, however fast it goes.
PROGRESS_INTERVAL = 1.0


class Progress:
    """Receives each partition's stats as it finishes (the CLI shows a bar).

    A subclass that overrides `advance` also hears how far the partitions being analysed
    are (the workers then send progress events); one that does not costs the workers nothing.
    """

    def begin(self, step: str) -> None:
        """A step of the run begins, in words ("scanning 7 files"): the CLI prints it as a line."""

    def tasks(self, stage: str, done: int, total: int) -> None:
        """`done` of the `total` tasks of a stage without stats of its own (scan, dedup) are finished."""

    def start(self, stage: str, partitions: int) -> None: ...

    def set_total(self, stage: str, documents: int) -> None:
        """The documents the stage will read (known from the scan), after `start`."""

    def advance(self, stage: str, partition: int, judged: int, kept: int) -> None:
        """Partition `partition` has judged and kept so many documents so far (not yet finished).

        Called from the client's event loop thread, concurrently with `update`.
        """

    def update(self, stage: str, stats: AnalysisStats | TokenizeStats | RowsDone) -> None: ...

    def finish(self, stage: str) -> None: ...


def follows_tasks(progress: Progress | None) -> bool:
    """Whether `progress` wants the task counts of the scan and the dedup (it overrides `tasks`)."""
    return progress is not None and type(progress).tasks is not Progress.tasks


def follows_partitions(progress: Progress) -> bool:
    """Whether `progress` wants the events inside partitions (it overrides `advance`)."""
    return type(progress).advance is not Progress.advance


class ProgressEvents:
    """One task's progress as distributed events (`Worker.log_event`) on a topic the client follows.

    `(judged, kept)` of the partition in hand, throttled to one event per
    `PROGRESS_INTERVAL`; the client adds them up into a moving bar (`compute_stage`).
    """

    def __init__(self, topic: str, worker: Any) -> None:
        self.topic = topic
        self.worker = worker
        self.partition = -1
        self.next_event = time.monotonic() + PROGRESS_INTERVAL

    def __call__(self, judged: int, kept: int) -> None:
        now = time.monotonic()
        if now >= self.next_event:
            self.next_event = now + PROGRESS_INTERVAL
            self.send(judged, kept)

    def send(self, judged: int, kept: int) -> None:
        self.worker.log_event(self.topic, {"partition": self.partition, "judged": judged, "kept": kept})


def progress_events(topic: str | None) -> ProgressEvents | None:
    """This task's events on `topic`; None without a topic or off a distributed worker (nobody to tell)."""
    if topic is None:
        return None
    worker = current_worker()
    return None if worker is None else ProgressEvents(topic, worker)
