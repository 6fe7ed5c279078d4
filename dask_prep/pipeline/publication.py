"""Publication on the cluster: the output parts become the dataset and the parquet shards.

    parts ──survey──▶ rows, bytes, doc-id samples ──reduction──▶ shard plan (count from bytes)
          ──scatter (groups of parts, sorted)──▶ pieces per shard range (_work/publish/)
          ──write_shard (one task per range)──▶ DIR/entity_coref_v2_N/data-*.arrow, DIR/parquet/part-*.parquet
          ──client: card, dataset_info.json, state.json (dataset_dict.json) last: the commit

The workers read and write every row; the client plans and writes the small files. Locally
the dataset is written under `NAME.tmp` and renamed when complete; on an object store (no
rename) in place, with `state.json` (and `dataset_dict.json`) last, so a publication cut
short is never loadable and the next `--resume` redoes it. The rows and their order are
those of the client publication (`dask_prep.output.publish.write_dataset`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import dask
import dask.bag as db
import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.io import storage
from dask_prep.output import shards as sh
from dask_prep.output.layout import Layout, dataset_dir_name
from dask_prep.output.publish import PARQUET_DIR
from dask_prep.pipeline.progress import Progress
from dask_prep.workers import current_client

GROUP_BYTES = 128 << 20  # uncompressed part bytes per scatter task, at most (unless one part is larger)
GROUPS_PER_THREAD = 4  # enough scatter tasks that every worker thread stays busy to the end


def publish_dataset(
    layout: Layout,
    part_indices: list[int],
    seq_len: int,
    lock: Any = None,
    schema: Any = None,
    *,
    validation_fraction: float | None = None,
    description: str | None = None,
    card: Callable[[Any, dict], str] | None = None,
    progress: Progress | None = None,
    shard_bytes: int = sh.SHARD_BYTES,
) -> str:
    """The output parts as a `datasets` dataset and parquet shards, written by the workers.

    Same arguments as `write_dataset` (the client publication, kept as the reference), plus
    `progress` (stages `sort` and `publish`, rows of the total) and `shard_bytes`, about the
    rows' Arrow bytes per shard. `card(features, splits)` gets {split: examples, documents,
    bytes}, as counted by the shard tasks. Returns the dataset's path.
    """
    progress = progress or Progress()
    parts = [layout.part("examples", i) for i in part_indices]
    final = os.path.join(layout.root, dataset_dir_name(seq_len))
    remote = storage.is_remote(layout.root)
    target = final if remote else final + ".tmp"
    pieces_dir = os.path.join(layout.work, "publish")
    parquet_dir = os.path.join(layout.root, PARQUET_DIR)
    for stale in (pieces_dir, target, parquet_dir) + ((final,) if remote else ()):
        storage.remove(stale)  # what an interrupted publication left
    schema = _schema(parts, schema)

    sizes, plan = _survey(parts, shard_bytes)
    groups = _groups(parts, sizes)
    progress.start("sort", len(groups))
    progress.set_total("sort", plan.rows)
    scatter = [
        dask.delayed(sh.scatter_parts, pure=False)(group, g, list(plan.boundaries), pieces_dir)
        for g, group in enumerate(groups)
    ]
    counts = _compute("sort", scatter, progress, rows=sum)
    if lock is not None:
        lock.confirm()

    progress.start("publish", plan.shards)
    progress.set_total("publish", plan.rows)
    writes = [
        dask.delayed(sh.write_shard, pure=False)(
            shard,
            [sh.piece_path(pieces_dir, shard, g) for g in range(len(groups)) if counts[g][shard]],
            schema,
            plan.shards,
            target,
            parquet_dir,
            validation_fraction,
        )
        for shard in range(plan.shards)
    ]
    results = _compute("publish", writes, progress, rows=lambda r: r.rows)
    splits = sh.split_totals(results)
    if lock is not None:
        lock.confirm()
    if card is not None:  # before the commit files: on a store, those come last
        import datasets

        storage.write_text(os.path.join(target, "README.md"), card(datasets.Features.from_arrow_schema(schema), splits))
    sh.commit_files(
        target, schema, plan.shards, results, validation_fraction=validation_fraction, description=description
    )
    if not remote:
        storage.remove(final)
        os.replace(target, final)
    storage.remove(pieces_dir)
    return final


def _schema(parts: list[str], given: Any) -> pa.Schema:
    """The parts' schema (all parts of a run share it), or `given` when there are no parts."""
    if parts:
        with storage.open_read(parts[0]) as handle:
            return pq.read_schema(handle)
    if given is None:
        raise ValueError("no output parts and no schema: nothing to publish")
    return given


def _survey(parts: list[str], shard_bytes: int) -> tuple[list[int], sh.ShardPlan]:
    """Each part's bytes (for grouping) and the shard plan; the doc-id samples stay on the workers."""
    if not parts:
        return [], sh.plan_ranges(sh.PartSurvey(), shard_bytes)
    surveys = db.from_sequence(parts, npartitions=min(len(parts), 64)).map(sh.survey_part)
    sizes = surveys.map(lambda s: s.nbytes)
    plan_ranges = functools.partial(sh.plan_ranges, shard_bytes=shard_bytes)
    plan = surveys.reduction(sh.merge_surveys, sh.merge_surveys).apply(plan_ranges)
    sizes, plan = dask.compute(sizes, plan)
    return list(sizes), plan


def _groups(parts: list[str], sizes: list[int]) -> list[list[str]]:
    """Consecutive parts in groups of at most `GROUP_BYTES`, and at least a few groups per thread."""
    if not parts:
        return [[]]
    client = current_client()
    threads = (os.cpu_count() or 1) if client is None else max(1, sum(client.nthreads().values()))
    limit = min(GROUP_BYTES, max(1, sum(sizes) // (GROUPS_PER_THREAD * threads)))
    groups: list[list[str]] = [[]]
    held = 0
    for part, size in zip(parts, sizes, strict=True):
        if groups[-1] and held + size > limit:
            groups.append([])
            held = 0
        groups[-1].append(part)
        held += size
    return groups


def _compute(stage: str, tasks: list, progress: Progress, rows: Callable[[Any], int]) -> list:
    """Compute the tasks on the cluster, telling `progress` the rows of each as it finishes."""
    client = current_client()
    if client is None:
        results = list(dask.compute(*tasks))
        for result in results:
            progress.update(stage, sh.RowsDone(rows(result)))
    else:
        from distributed import as_completed

        futures = client.compute(tasks)
        for future in as_completed(futures):
            progress.update(stage, sh.RowsDone(rows(future.result())))
        results = [future.result() for future in futures]
    progress.finish(stage)
    return results
