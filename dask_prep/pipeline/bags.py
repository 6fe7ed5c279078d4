"""How the partition specs become a Dask bag's partitions: one spec per task, or consecutive ones grouped."""

from __future__ import annotations

import os

import dask.bag as db

from dask_prep.io.inputs import PartitionSpec
from dask_prep.workers import current_client


def partition_bag(specs: list[PartitionSpec], *, reading: bool = True, size: int | None = None) -> db.Bag:
    """The partition specs as a bag: one per bag partition, or consecutive ones grouped.

    A task that reads input reads its specs in order with one `PartitionReader`, so
    grouping a compressed file's consecutive partitions decompresses that file once per
    group instead of once per partition. Groups are made only when there are more specs
    than files and than `PARTITIONS_PER_THREAD` per worker thread (which keeps every
    thread busy to the end), and hold at most `MAX_SPECS_PER_TASK` (for progress and
    retries). Stages that do not read the input (`reading=False`) keep one spec per task.
    `size` fixes the grouping (`group_size`; partition k is `specs[k * size : (k + 1) * size]`).
    """
    return db.from_sequence(specs, partition_size=size or group_size(specs, reading))


def group_size(specs: list[PartitionSpec], reading: bool) -> int:
    if not reading or not specs:
        return 1
    files = len({piece.file.path for spec in specs for piece in spec.slices})
    tasks = max(PARTITIONS_PER_THREAD * total_threads(), files, -(-len(specs) // MAX_SPECS_PER_TASK))
    tasks = max(1, min(len(specs), tasks))  # cut as `db.from_sequence(specs, npartitions=tasks)` cuts
    return -(-len(specs) // tasks) if len(specs) <= 100 else max(1, len(specs) // tasks)


# Enough partitions per worker thread that the last ones finish close together. (8 per
# thread was measured too: no better on the benchmark's 2-worker runs; benchmarks/HISTORY.md.)
PARTITIONS_PER_THREAD = 4
# At most this many partitions per reading task (see `partition_bag`).
MAX_SPECS_PER_TASK = 16


def total_threads() -> int:
    client = current_client()
    return (os.cpu_count() or 1) if client is None else max(1, sum(client.nthreads().values()))
