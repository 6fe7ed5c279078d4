"""Computing one stage from the client: progress as partitions finish, dead workers' partitions run again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dask
import dask.bag as db

from dask_prep.pipeline.progress import Progress, follows_tasks
from dask_prep.workers import current_client

# Times the client itself runs again a partition whose worker died (`KilledWorker`, once
# distributed.scheduler.allowed-failures is used up). The next attempt finds the marker the
# dead one left and isolates each document's analysis (dask_prep.analysis.isolation), so one more
# is enough for that partition; others die beside it only when they share its worker.
CLIENT_RETRIES = 5


def compute_stage(
    stage: str,
    bag: db.Bag,
    item: Any,
    progress: Progress,
    *,
    topic: str | None = None,
    documents: int | None = None,
    redo_item: Callable[[], Any] | None = None,
) -> tuple[list, Any]:
    """Compute a per-partition stats bag (and an Item sharing its tasks), with progress.

    With `topic`, the workers' progress events on it (`ProgressEvents`) go to
    `progress.advance` while the partitions are computed. A partition whose worker died is
    run again here (`_retry_killed`); after that the Item comes from `redo_item()` (a new
    graph) instead of a reduction that lost pieces.
    """
    client = current_client()
    progress.start(stage, bag.npartitions)
    if documents is not None:
        progress.set_total(stage, documents)
    if client is None:
        results, value = dask.compute(bag, item)
        for stats in results:
            progress.update(stage, stats)
        progress.finish(stage)
        return results, value
    from distributed import as_completed

    if topic is not None:  # subscribed before the tasks are submitted, so no event is missed

        def on_event(event: tuple[float, dict]) -> None:
            message = event[1]
            progress.advance(stage, message["partition"], message["judged"], message["kept"])

        client.subscribe_topic(topic, on_event)
    try:
        # One submission, unoptimised, so the partitions and the Item share their tasks.
        parts = bag.to_delayed(optimize_graph=False)
        futures = client.compute(parts + ([item] if item is not None else []), optimize_graph=False)
        part_futures = futures[: len(parts)]
        retried: dict[str, int] = {}
        # Kept as they come: a dead worker loses the results it held, and Dask computes them
        # again (or fails them, once its allowed-failures are used up) even after they arrived.
        by_part: dict[str, list] = {}
        finished = as_completed(part_futures)
        for future in finished:
            if _retry_killed(client, future, retried):
                finished.add(future)
                continue
            by_part[future.key] = future.result()
            for stats in by_part[future.key]:
                progress.update(stage, stats)
    finally:
        if topic is not None:
            client.unsubscribe_topic(topic)
    progress.finish(stage)
    results = [stats for future in part_futures for stats in by_part[future.key]]
    value = None
    if item is not None:
        from distributed import wait
        from distributed.scheduler import KilledWorker

        if not retried:
            wait(futures[-1])
        lost = bool(retried) or (futures[-1].status == "error" and isinstance(futures[-1].exception(), KilledWorker))
        if lost and redo_item is not None:
            # Scheduler retries of a reduction whose pieces died with workers can leave it
            # waiting on a failed piece forever; the Item is computed anew instead.
            client.cancel([futures[-1]])
            value = redo_item()
        else:
            value = futures[-1].result()
    return results, value


def _retry_killed(client: Any, future: Any, retried: dict[str, int]) -> bool:
    """Run a partition again whose worker died, instead of ending the run; whether it was."""
    from distributed.scheduler import KilledWorker

    if future.status != "error" or not isinstance(future.exception(), KilledWorker):
        return False
    if retried.get(future.key, 0) >= CLIENT_RETRIES:
        return False
    retried[future.key] = retried.get(future.key, 0) + 1
    logging.getLogger(__name__).warning(
        "dask-prep: a worker died running %s; running it again with each document analysed in isolation",
        future.key,
    )
    _retry(client, future)
    return True


def _retry(client: Any, future: Any) -> None:
    """`client.retry([future])`, which fails (KeyError) when the task that erred is one the
    client holds no future of (here: the partition's task under the future's `map`).

    The scheduler runs the erred tasks again, and their erred dependents after them; the
    client's own state of each future it holds among them is reset here.
    """
    retried = client.sync(client.scheduler.retry, keys=[future.key], client=client.id)
    for key in retried:
        state = client.futures.get(key)
        if state is not None:
            state.retry()


def compute_with_progress(stage: str, progress: Progress | None, *collections: Any) -> tuple:
    """`dask.compute(*collections)`; on a distributed client, `progress.tasks` hears how many
    of their tasks are done (distributed's own progress feed from the scheduler)."""
    client = current_client()
    if client is None or not follows_tasks(progress):  # nobody to tell: no feed to pay for
        return dask.compute(*collections)
    from distributed.diagnostics.progressbar import ProgressBar

    class TaskCount(ProgressBar):
        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:  # noqa: A002 (distributed's name)
            progress.tasks(stage, all - remaining, all)

    futures = client.compute(list(collections))
    try:
        client.sync(TaskCount(futures, scheduler=client.scheduler.address).listen)
    except Exception as exc:  # no bar (e.g. a scheduler that refuses the feed); the results still come
        logging.getLogger(__name__).debug("no progress for %s: %r", stage, exc)
    finally:
        progress.finish(stage)
    return tuple(client.gather(futures))
