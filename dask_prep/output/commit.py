"""One result per partition per run: the first attempt of a run to commit a partition wins.

A run can compute one partition more than once: Dask runs it again when the worker holding
its result dies (even after the client has that result), the client retries it after a
`KilledWorker`, and an attempt whose worker the scheduler gave up on can still finish late.
The attempts need not agree: one analysed in isolation under load can reject documents as
`analysis_timeout` that another kept. Had a later attempt rewritten the parts, they would no
longer be what the client, the cap and stage 2 hold as the partition's record, and the fence
would stop the run at publication (exit 2). So:

- an attempt stages its parts (a temporary file; on a store, bytes in memory) and publishes
  them with its stats file in one step (`commit_partition`), under an exclusive lock of that
  partition (locally a `flock`) and the run's fence (`fencing.committing`);
- if the stats file already names this run, another attempt committed first: this one
  discards what it staged and returns the stats committed (`committed`), as does an
  attempt that starts after the commit, without computing anything.

Every attempt of a run thus returns the same stats, and the files are the ones they record.
On an object store no lock is shared by the workers: two attempts committing in the same
instant can still interleave there (then the fence's read-time check stops the run with one
line, and `--resume` redoes the partition); any attempt later than a commit adopts it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.io import storage
from dask_prep.output import fencing
from dask_prep.output.layout import Layout
from dask_prep.stats import PartRecord

COMMITS_DIR = "commits"  # under _work: one lock file per stage and partition
STAGING_DIR = "staging"  # under _work: parts written, not yet committed
LOCK_WAIT_SECONDS = 60.0  # a commit is a few renames: an attempt holding it longer is stopped or hung

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]


@dataclass
class StagedPart:
    """A finished part not yet under its final name: `tmp` (local) or `data` (a store)."""

    path: str
    record: PartRecord
    rows: int
    tmp: str | None = None
    data: bytes | None = None


def write_parquet(handle: Any, batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema) -> int:
    """The batches as one zstd parquet file into the open binary `handle`; the rows written."""
    rows = 0
    with pq.ParquetWriter(handle, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write(batch)
            rows += batch.num_rows
    return rows


def stage_part(
    layout: Layout, kind: str, index: int, batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema
) -> StagedPart:
    """Write a parquet part where no other attempt (nor a reader of its folder) sees it, with its record."""
    path = layout.part(kind, index)
    if storage.is_remote(path):
        import io

        buffer = io.BytesIO()
        with storage.naming_the_file(path):
            rows = write_parquet(buffer, batches, schema)
        data = buffer.getvalue()
        return StagedPart(path, fencing.record_of(io.BytesIO(data)), rows, data=data)
    # Under _work, not beside the part: a process killed before its commit leaves nothing in decisions/.
    folder = os.path.join(layout.work, STAGING_DIR)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{kind}-{index:05d}.{uuid.uuid4().hex}.tmp")
    try:
        with storage.naming_the_file(path):  # the part the user knows, not its staging name
            with open(tmp, "wb") as handle:
                rows = write_parquet(handle, batches, schema)
            with open(tmp, "rb") as handle:
                record = fencing.record_of(handle)
    except BaseException:
        discard([StagedPart(path, PartRecord(0, ""), 0, tmp=tmp)])
        raise
    return StagedPart(path, record, rows, tmp=tmp)


def discard(staged: Iterable[StagedPart]) -> None:
    for part in staged:
        if part.tmp is not None and os.path.exists(part.tmp):
            os.remove(part.tmp)


def committed(layout: Layout, stage: str, index: int) -> dict[str, Any] | None:
    """The stats an attempt of this run committed for the partition, or None (none yet, or no run)."""
    if layout.token is None:
        return None
    try:
        data = storage.read_json(layout.stats(stage, index))
    except FileNotFoundError:
        return None
    except ValueError:  # a torn stats file is never a commit (local writes are renames)
        return None
    return data if fencing.stats_run(data) == layout.token else None


def commit_partition(
    layout: Layout, stage: str, index: int, staged: list[StagedPart], stats: dict[str, Any]
) -> dict[str, Any] | None:
    """Publish the staged parts, then `stats` (the commit); None if so. If an attempt of this run
    committed first: its stats, and what this attempt staged is discarded."""
    try:
        with _partition_lock(layout, stage, index), fencing.committing(layout):
            earlier = committed(layout, stage, index)
            if earlier is not None:
                return earlier
            for part in staged:
                if part.tmp is not None:
                    os.makedirs(os.path.dirname(part.path), exist_ok=True)
                    os.replace(part.tmp, part.path)
                else:
                    storage.write_bytes(part.path, part.data or b"")
            storage.write_json(stats, layout.stats(stage, index))
            return None
    finally:
        discard(staged)


@contextlib.contextmanager
def _partition_lock(layout: Layout, stage: str, index: int) -> Iterator[None]:
    """Locally, the partition's commits one at a time (a dead holder's `flock` goes with it)."""
    if layout.token is None or storage.is_remote(layout.root) or fcntl is None:
        yield
        return
    folder = os.path.join(layout.work, COMMITS_DIR)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{stage}-{index:05d}.lock"), "a", encoding="utf-8") as handle:
        fencing.lock_exclusively(
            handle,
            LOCK_WAIT_SECONDS,
            f"another attempt has been committing partition {index} of {layout.root} for "
            f"{LOCK_WAIT_SECONDS:.0f} s; stop its workers, then run again with --resume",
        )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
