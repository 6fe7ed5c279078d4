"""Publishing the final dataset in the client: the output parts as one `datasets` dataset and parquet shards.

A run publishes on the workers (`dask_prep.pipeline.publication`, shards by `output.shards`);
this single-process publication is kept as the reference its rows and order are tested
against, and as the benchmarks' baseline.

The dataset is built from the parquet parts by `datasets` itself (streamed into an
Arrow cache, never all in memory), saved to a temporary directory and renamed, so
`DIR/entity_coref_v2_{seq_len}` exists only when it is complete. On an object store
(no rename) it is written in place with its loadable metadata last.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Any

from dask_prep.io import storage
from dask_prep.output import fencing
from dask_prep.output.card import split_by_document, split_stats
from dask_prep.output.layout import Layout, dataset_dir_name, part_name
from dask_prep.stats import PartRecord

PARQUET_DIR = "parquet"  # DIR/parquet/*.parquet: the dataset's rows, in its order, for streaming readers
PARQUET_SHARD_BYTES = 256 << 20  # uncompressed Arrow bytes per parquet shard, at most (about)


def write_dataset(
    layout: Layout,
    part_indices: list[int],
    seq_len: int,
    lock: Any = None,
    schema: Any = None,
    *,
    validation_fraction: float | None = None,
    description: str | None = None,
    card: Any = None,
    records: dict[int, PartRecord] | None = None,
) -> str:
    """Convert the output parts into a saved `datasets` dataset, ordered by doc id and mention.

    Also publishes the same rows, in the same order, as `DIR/parquet/part-NNNNN.parquet`.
    The dataset is published last; its presence is the commit. Locally it is saved under a
    temporary name and renamed. On an object store (no rename) `datasets` writes it in place
    and its `state.json` and `dataset_info.json`, which `load_from_disk` needs, come last, so
    a publication cut short is never a loadable dataset (and is replaced by the next
    `--resume`). `lock` (a `store_lock.StoreLock`) is confirmed before anything is published.

    With `validation_fraction`, a `DatasetDict` of `train` and `validation` split by
    document (`dataset_card.split_by_document`). `description` goes into every split's
    `DatasetInfo`; `card(features, split_stats)` returns the README.md written beside the data.

    With no examples the dataset is empty but loadable, with the columns of the parts (or of
    `schema`, the output schema, when there are no parts at all).

    With `records` ({partition: PartRecord} of the examples parts, as this run's stats
    record them), each part is checked against its record before it is read, and read as
    checked (locally a hard link, which a later rename over the part cannot change):
    a part written by another run is never published (`fencing.ForeignFileError`).
    """
    splitting = {"validation_fraction": validation_fraction, "description": description, "card": card}
    if storage.is_remote(layout.root):
        return _write_dataset_to_store(layout, part_indices, seq_len, lock, schema, records, **splitting)

    final = os.path.join(layout.root, dataset_dir_name(seq_len))
    cache = os.path.join(layout.work, "hf_cache")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    checked = os.path.join(layout.work, "published-parts")
    shutil.rmtree(checked, ignore_errors=True)
    parts = [_checked_local_part(layout.part("examples", i), checked, records, i) for i in part_indices]
    with storage.naming_the_file(cache):  # `datasets` hides a full disk in its own error
        dataset = _sorted_dataset(parts, cache, schema)
    write_parquet_shards(dataset, os.path.join(layout.root, PARQUET_DIR))
    save_splits(dataset, tmp, **splitting)
    del dataset
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(checked, ignore_errors=True)
    return final


def _checked_local_part(path: str, folder: str, records: dict[int, PartRecord] | None, index: int) -> str:
    """`path` as checked against its record: a hard link to it (a copy where links fail), checked."""
    if records is None:
        return path
    os.makedirs(folder, exist_ok=True)
    linked = os.path.join(folder, part_name(index))
    try:
        os.link(path, linked)
    except OSError:
        shutil.copyfile(path, linked)
    fencing.check_part(linked, records[index])
    return linked


def _sorted_dataset(parts: list[str], cache: str, schema: Any = None) -> Any:
    """The examples of the local parquet `parts` as one dataset sorted by doc id and mention."""
    import datasets
    import pyarrow.parquet as pq

    non_empty = [p for p in parts if pq.ParquetFile(p).metadata.num_rows > 0]
    if non_empty:
        dataset = datasets.Dataset.from_parquet(non_empty, cache_dir=cache, keep_in_memory=False)
        # A defined order whatever the partitioning; sorting builds an index, not a copy.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pyarrow's null_placement notice
            dataset = dataset.sort(["doc_id", "coref_pos"])
    else:
        schema = pq.read_schema(parts[0]) if parts else schema
        dataset = datasets.Dataset(schema.empty_table()) if schema is not None else datasets.Dataset.from_dict({})
    return dataset


def save_splits(
    dataset: Any,
    path: str,
    *,
    validation_fraction: float | None = None,
    description: str | None = None,
    card: Any = None,
) -> None:
    """Save `dataset` at `path` (local or a store URL), split by document if asked, with its card."""
    splits = split_by_document(dataset, validation_fraction) if validation_fraction else {"train": dataset}
    for split in splits.values():
        if description is not None:
            split.info.description = description
    saved = splits if validation_fraction else dataset
    # One shard even when empty: `datasets` saves 0 rows as no shard, which load_from_disk
    # cannot open (IndexError).
    empty = any(len(split) == 0 for split in splits.values())
    one_shard = ({name: 1 for name in splits} if validation_fraction else 1) if empty else None
    with storage.naming_the_file(path):
        saved.save_to_disk(path, num_shards=one_shard, storage_options=storage.options_for(path) or None)
    if card is not None:
        text = card(dataset.features, split_stats(splits, path, is_dict=bool(validation_fraction)))
        storage.write_text(os.path.join(path, "README.md"), text)


def write_parquet_shards(dataset: Any, folder: str) -> list[str]:
    """The dataset's rows, in its order, as parquet shards of about `PARQUET_SHARD_BYTES` each.

    Each shard is written whole (one request on a store); shards of an earlier attempt are
    removed first, so the folder holds exactly this dataset.
    """
    import io
    import math

    storage.remove(folder)
    shards = max(1, math.ceil(dataset.data.nbytes / PARQUET_SHARD_BYTES)) if len(dataset) else 1
    paths = []
    for index in range(shards):
        buffer = io.BytesIO()
        dataset.shard(shards, index, contiguous=True).to_parquet(buffer)
        path = os.path.join(folder, f"part-{index:05d}.parquet")
        storage.write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def _write_dataset_to_store(
    layout: Layout,
    part_indices: list[int],
    seq_len: int,
    lock: Any,
    schema: Any,
    records: dict[int, PartRecord] | None,
    **splitting: Any,
) -> str:
    """write_dataset for an object store: parts copied to a local scratch directory first."""
    import tempfile

    final = os.path.join(layout.root, dataset_dir_name(seq_len))
    with tempfile.TemporaryDirectory(prefix="dask-prep-dataset-") as scratch, storage.naming_the_file(scratch):
        parts = []
        for i in part_indices:  # `datasets` reads local parquet into its Arrow cache
            local = os.path.join(scratch, "parts", part_name(i))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            source = layout.part("examples", i)
            data = storage.read_bytes(source) if records is None else fencing.verified_bytes(source, records[i])
            with open(local, "wb") as handle:
                handle.write(data)
            parts.append(local)
        dataset = _sorted_dataset(parts, os.path.join(scratch, "hf_cache"), schema)
        if lock is not None:
            lock.confirm()
        write_parquet_shards(dataset, os.path.join(layout.root, PARQUET_DIR))
        storage.remove(final)  # an earlier publication cut short
        if lock is not None:
            lock.confirm()
        save_splits(dataset, final, **splitting)
        del dataset
    return final
