"""The published dataset written by the workers, shard by shard — plain functions, no Dask.

A sample sort by the dataset's order, `doc_id` then `coref_pos` (ties: part, then row in
the part, as a stable sort of the parts in order gives them):

1. `survey_part`: rows, bytes and a sample of doc ids of one output part (metadata and
   one column only); `plan_ranges` turns them into the shard count (from the bytes) and
   the doc-id boundaries of the shards (`ShardPlan`).
2. `scatter_parts`: a group of parts, sorted, cut into one piece per shard range
   (`_work/publish/pieces/`).
3. `write_shard`: one range's pieces merged in order, written as the dataset's Arrow
   shard(s) (`save_to_disk`'s files, one per split) and a parquet shard.
4. `commit_files`: the small files `load_from_disk` needs (`state.json`,
   `dataset_info.json`, `dataset_dict.json`), which the client writes last.

A document's examples never straddle two ranges, so its split and its count stay in one shard.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dask_prep.io import storage
from dask_prep.output.card import in_validation

SHARD_BYTES = 256 << 20  # uncompressed bytes per shard, about (as the client publication's parquet shards)
SAMPLE_EVERY = 50  # one doc id sampled per this many rows of a part (at least one per non-empty part)
ORDER = [("doc_id", "ascending"), ("coref_pos", "ascending")]


@dataclass(frozen=True)
class PartSurvey:
    """One output part: rows, uncompressed bytes, doc ids at evenly spaced ranks."""

    rows: int = 0
    nbytes: int = 0
    samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShardPlan:
    """How many shards, and the doc ids where each next shard starts (len = shards - 1)."""

    rows: int
    nbytes: int
    boundaries: tuple[str, ...]

    @property
    def shards(self) -> int:
        return len(self.boundaries) + 1


@dataclass
class ShardResult:
    """What one shard task wrote: per split its rows, distinct documents and Arrow bytes."""

    index: int
    rows: int = 0
    splits: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class RowsDone:
    """Progress of a publication stage: rows finished by one task (what `Progress.update` gets)."""

    rows: int
    examples: int = 0


def _leaf_types(data_type: pa.DataType) -> list[pa.DataType]:
    """Arrow types of a field's parquet leaf columns, depth first (parquet's column order)."""
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return _leaf_types(data_type.value_type)
    if pa.types.is_struct(data_type):
        return [leaf for i in range(data_type.num_fields) for leaf in _leaf_types(data_type.field(i).type)]
    return [data_type]


def arrow_bytes(parquet: pq.ParquetFile) -> int:
    """About the Arrow bytes of a parquet file's rows, from its metadata alone: each leaf
    column's values times their Arrow width (parquet's own sizes count repeated values once
    when dictionary-encoded), strings by their encoded size, plus an offset per row and column."""
    meta = parquet.metadata
    leaves = [leaf for f in parquet.schema_arrow for leaf in _leaf_types(f.type)]
    total = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            column = group.column(j)
            leaf = leaves[j] if j < len(leaves) else pa.string()
            fixed = pa.types.is_integer(leaf) or pa.types.is_floating(leaf) or pa.types.is_boolean(leaf)
            total += column.num_values * max(1, leaf.bit_width // 8) if fixed else column.total_uncompressed_size
            total += 4 * group.num_rows
    return total


def survey_part(path: str) -> PartSurvey:
    """Rows, bytes (about their Arrow size) and a sample of an output part's doc ids."""
    with storage.open_read(path) as handle:
        parquet = pq.ParquetFile(handle)
        meta = parquet.metadata
        nbytes = arrow_bytes(parquet)
        if meta.num_rows == 0:
            return PartSurvey()
        doc_ids = parquet.read(columns=["doc_id"]).column("doc_id")
    ordered = pc.sort_indices(doc_ids)
    count = max(1, meta.num_rows // SAMPLE_EVERY)
    ranks = [(i * meta.num_rows) // count for i in range(count)]
    samples = doc_ids.take(ordered.take(pa.array(ranks))).to_pylist()
    return PartSurvey(meta.num_rows, nbytes, tuple(samples))


def merge_surveys(surveys: Iterable[PartSurvey]) -> PartSurvey:
    """Surveys added up (a reduction step, which may be handed an iterator): rows, bytes, samples."""
    surveys = list(surveys)
    return PartSurvey(
        sum(s.rows for s in surveys),
        sum(s.nbytes for s in surveys),
        tuple(x for s in surveys for x in s.samples),
    )


def plan_ranges(survey: PartSurvey, shard_bytes: int = SHARD_BYTES) -> ShardPlan:
    """Shards of about `shard_bytes` each, with doc-id boundaries at the samples' quantiles."""
    shards = max(1, math.ceil(survey.nbytes / shard_bytes)) if survey.rows else 1
    samples = sorted(survey.samples)
    shards = min(shards, max(1, len(samples)))
    boundaries = tuple(samples[(i * len(samples)) // shards] for i in range(1, shards))
    return ShardPlan(survey.rows, survey.nbytes, boundaries)


def shard_of(doc_id: str, boundaries: tuple[str, ...] | list[str]) -> int:
    """The shard of a doc id: how many boundaries are at or below it (str order = UTF-8 byte order)."""
    return bisect.bisect_right(boundaries, doc_id)


def piece_path(pieces_dir: str, shard: int, group: int) -> str:
    return os.path.join(pieces_dir, f"shard-{shard:05d}", f"group-{group:05d}.arrow")


def read_parts(paths: list[str], schema: pa.Schema | None = None) -> pa.Table:
    """Parts read whole, in order, as one table (row groups of 0 rows are simply nothing)."""
    tables = []
    for path in paths:
        with storage.open_read(path) as handle:
            tables.append(pq.read_table(handle))
    if not tables:
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.concat_tables(tables)


def in_order(table: pa.Table) -> pa.Table:
    """The rows by doc id then coref position; a stable sort, so ties keep their order."""
    if table.num_rows == 0:
        return table
    return table.take(pc.sort_indices(table, sort_keys=ORDER))


def _write_ipc(table: pa.Table, path: str) -> None:
    # Uncompressed: read back memory-mapped (locally), it costs neither a decompression nor a copy.
    with storage.writing(path) as handle, pa.ipc.new_file(handle, table.schema) as writer:
        writer.write_table(table)


def _read_ipc(path: str) -> pa.Table:
    if not storage.is_remote(path):
        return pa.ipc.open_file(pa.memory_map(path)).read_all()
    with storage.open_read(path) as handle:
        return pa.ipc.open_file(pa.BufferReader(handle.read())).read_all()


def scatter_parts(paths: list[str], group: int, boundaries: list[str], pieces_dir: str) -> list[int]:
    """Write a group of parts' rows of each shard range as a piece, in their order; rows per shard.

    Only the range is computed here (the shard task sorts): a stable sort by range keeps
    each range's rows in part and row order, which is the tie order of the dataset.
    """
    table = read_parts(paths)
    shards = len(boundaries) + 1
    rows = [0] * shards
    if table.num_rows == 0:
        return rows
    ranges = np.searchsorted(
        np.array(boundaries, dtype=object), table.column("doc_id").to_numpy(zero_copy_only=False), side="right"
    )
    order = np.argsort(ranges, kind="stable")
    table = table.take(pa.array(order))
    ends = np.searchsorted(ranges[order], np.arange(shards), side="right")
    start = 0
    for shard, end in enumerate(ends.tolist()):
        if end > start:
            _write_ipc(table.slice(start, end - start), piece_path(pieces_dir, shard, group))
            rows[shard] = end - start
        start = end
    return rows


def shard_file(index: int, shards: int) -> str:
    """A shard's file name in `save_to_disk`'s layout."""
    return f"data-{index:05d}-of-{shards:05d}.arrow"


def _split_names(validation_fraction: float | None) -> list[str]:
    return ["train", "validation"] if validation_fraction else ["train"]


def _in_split(table: pa.Table, name: str, validation_fraction: float | None) -> pa.Table:
    if not validation_fraction:
        return table
    want = name == "validation"
    doc_ids = table.column("doc_id").to_pylist()
    return table.filter(pa.array([in_validation(d, validation_fraction) == want for d in doc_ids], pa.bool_()))


def write_arrow_shard(table: pa.Table, features: Any, path: str) -> int:
    """`table` as one Arrow shard of `save_to_disk` (datasets' own writer), written whole; bytes."""
    from datasets.arrow_writer import ArrowWriter

    with storage.writing(path) as handle:
        writer = ArrowWriter(features=features, stream=handle, embed_local_files=True)
        try:
            writer.write_table(table)
            writer.finalize(close_stream=False)  # storage.writing publishes the file
        finally:
            writer.close()
        size = handle.tell()
    return size


def write_parquet_shard(table: pa.Table, features: Any, path: str) -> None:
    """`table` as one parquet shard, as `Dataset.to_parquet` writes it, in one request."""
    import datasets
    from datasets.table import InMemoryTable

    buffer = io.BytesIO()
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # a worker's stderr is often the user's terminal
    try:
        datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features)).to_parquet(buffer)
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    storage.write_bytes(path, buffer.getvalue())


def write_shard(
    index: int,
    pieces: list[str],
    schema: pa.Schema,
    shards: int,
    dataset_dir: str,
    parquet_dir: str,
    validation_fraction: float | None = None,
) -> ShardResult:
    """Shard `index`: its pieces (in group order) merged in the dataset's order, written as
    the dataset's Arrow file(s) (one per split) and `parquet_dir/part-{index}.parquet`."""
    import datasets

    table = in_order(pa.concat_tables([_read_ipc(p) for p in pieces]) if pieces else schema.empty_table())
    features = datasets.Features.from_arrow_schema(schema)
    table = table.select(schema.names).cast(schema)
    result = ShardResult(index, table.num_rows)
    is_dict = bool(validation_fraction)
    for name in _split_names(validation_fraction):
        rows = _in_split(table, name, validation_fraction)
        folder = os.path.join(dataset_dir, name) if is_dict else dataset_dir
        size = write_arrow_shard(rows, features, os.path.join(folder, shard_file(index, shards)))
        documents = pc.count_distinct(rows.column("doc_id")).as_py() if "doc_id" in rows.column_names else 0
        result.splits[name] = {"examples": rows.num_rows, "documents": documents, "bytes": size}
        del rows
    write_parquet_shard(table, features, os.path.join(parquet_dir, f"part-{index:05d}.parquet"))
    return result


def split_totals(results: list[ShardResult]) -> dict[str, dict[str, int]]:
    """{split: examples, documents, bytes} over all shards (the card's and report's `splits`)."""
    totals: dict[str, dict[str, int]] = {}
    for result in sorted(results, key=lambda r: r.index):
        for name, counts in result.splits.items():
            into = totals.setdefault(name, {"examples": 0, "documents": 0, "bytes": 0})
            for key, value in counts.items():
                into[key] += value
    return totals


def commit_files(
    dataset_dir: str,
    schema: pa.Schema,
    shards: int,
    results: list[ShardResult],
    *,
    validation_fraction: float | None = None,
    description: str | None = None,
) -> list[str]:
    """Write the small files that make the shards a loadable dataset; the last one is the commit.

    Per split `dataset_info.json` then `state.json` (as `save_to_disk` writes them); for a
    `DatasetDict`, `dataset_dict.json` after every split. Returns the paths written, in order.
    """
    import datasets
    from datasets.utils.py_utils import asdict

    features = datasets.Features.from_arrow_schema(schema)
    files = [shard_file(i, shards) for i in range(shards)]
    fingerprint = hashlib.sha256(
        json.dumps([(r.index, r.splits) for r in sorted(results, key=lambda r: r.index)]).encode()
    ).hexdigest()[:16]
    is_dict = bool(validation_fraction)
    written = []
    for name in _split_names(validation_fraction):
        folder = os.path.join(dataset_dir, name) if is_dict else dataset_dir
        info = asdict(datasets.DatasetInfo(description=description or "", features=features))
        state = {
            "_data_files": [{"filename": f} for f in files],
            "_fingerprint": f"{fingerprint}-{name}",
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": name,
        }
        for path, text in (
            (os.path.join(folder, "dataset_info.json"), json.dumps({k: info[k] for k in sorted(info)}, indent=2)),
            (os.path.join(folder, "state.json"), json.dumps(state, indent=2, sort_keys=True)),
        ):
            storage.write_text(path, text)
            written.append(path)
    if is_dict:
        path = os.path.join(dataset_dir, "dataset_dict.json")
        storage.write_text(path, json.dumps({"splits": _split_names(validation_fraction)}))
        written.append(path)
    return written
