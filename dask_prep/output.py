"""The output directory and the final `datasets` dataset.

The dataset is built from the parquet parts by `datasets` itself (streamed into an
Arrow cache, never all in memory), saved to a temporary directory and renamed, so
`DIR/entity_coref_v2_{seq_len}` exists only when it is complete.
"""

from __future__ import annotations

import os
import shutil

from dask_prep.partition import part_name


class OutputDirError(RuntimeError):
    """The output directory cannot be used as asked (exists, not empty, no --overwrite)."""


def check_output_dir(output_dir: str, *, overwrite: bool = False) -> bool:
    """Whether the directory has content to replace; an error if that is not allowed."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputDirError(f"--output-dir {output_dir!r} is a file; give a directory")
    has_content = os.path.isdir(output_dir) and bool(os.listdir(output_dir))
    if has_content and not overwrite:
        raise OutputDirError(
            f"--output-dir {output_dir!r} is not empty; pass --overwrite to replace it (nothing was deleted)"
        )
    return has_content


def prepare_output_dir(output_dir: str, *, overwrite: bool = False) -> None:
    if check_output_dir(output_dir, overwrite=overwrite):
        shutil.rmtree(output_dir)
    os.makedirs(output_dir, exist_ok=True)


def dataset_dir_name(seq_len: int) -> str:
    return f"entity_coref_v2_{seq_len}"


def write_dataset(work_dir: str, part_indices: list[int], output_dir: str, seq_len: int) -> str:
    """Convert the output parts (in partition order) into a saved `datasets` dataset."""
    import datasets
    import pyarrow.parquet as pq

    parts = [os.path.join(work_dir, "examples", part_name(i)) for i in part_indices]
    final = os.path.join(output_dir, dataset_dir_name(seq_len))
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    non_empty = [p for p in parts if pq.ParquetFile(p).metadata.num_rows > 0]
    if non_empty:
        dataset = datasets.Dataset.from_parquet(
            non_empty, cache_dir=os.path.join(work_dir, "hf_cache"), keep_in_memory=False
        )
    else:
        schema = pq.read_schema(parts[0]) if parts else None
        dataset = (
            datasets.Dataset(schema.empty_table()) if schema is not None else datasets.Dataset.from_dict({})
        )
    dataset.save_to_disk(tmp)
    del dataset
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    shutil.rmtree(os.path.join(work_dir, "hf_cache"), ignore_errors=True)
    return final
