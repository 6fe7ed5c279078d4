"""The output directory and the final `datasets` dataset.

The dataset is built from the parquet parts by `datasets` itself (streamed into an
Arrow cache, never all in memory), saved to a temporary directory and renamed, so
`DIR/entity_coref_v2_{seq_len}` exists only when it is complete. A run holds its
directory (`hold_output_dir`) so that a second run into it fails at once instead of
deleting or mixing the first one's files.

`DIR` may also be an object-store URL (`s3://bucket/prefix`): there every file goes
through `storage` (one request under the final name, no rename), the dataset is written
in place with its loadable metadata last, and the lock is a conditional-write object.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import shutil
import socket
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from dask_prep import storage

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: runs are not guarded there
    fcntl = None  # type: ignore[assignment]

WORK_DIR = "_work"
LOCK_FILE = ".dask-prep.lock"  # flock'ed by the run writing the directory; left behind, harmless


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class Layout:
    """Where each file of a run lives under the output directory."""

    root: str

    @property
    def work(self) -> str:
        return os.path.join(self.root, WORK_DIR)

    def part(self, kind: str, index: int) -> str:
        """kind: 'candidates' and 'examples' (intermediate), 'decisions' (kept for users)."""
        folder = self.root if kind == "decisions" else self.work
        return os.path.join(folder, kind, part_name(index))

    def stats(self, stage: str, index: int) -> str:
        return os.path.join(self.work, "stats", f"{stage}-{index:05d}.json")

    @property
    def manifest(self) -> str:
        return os.path.join(self.root, "manifest.json")


def write_json_atomically(data: Any, path: str) -> None:
    if storage.is_remote(path):  # no rename on a store: one request under the final name
        storage.write_json(data, path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"

    def write() -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)

    _with_file_named(write, path)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    if storage.is_remote(path):
        return storage.read_json(path)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class OutputDirError(RuntimeError):
    """The output directory cannot be used as asked (a file, not empty without --overwrite, in use)."""


def _try_lock(handle: IO[str], output_dir: str) -> None:
    """flock the open lock file, or say which run holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read() or "{}")
        except ValueError:
            holder = {}
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
        raise OutputDirError(
            f"--output-dir {output_dir!r} is in use by another dask-prep run ({who}); wait for it to "
            "finish or choose another --output-dir (nothing was deleted)"
        ) from None


def _in_use_error(output_dir: str, holder: str) -> OutputDirError:
    return OutputDirError(
        f"--output-dir {output_dir!r} is in use by another dask-prep run ({holder}); wait for it to "
        "finish or choose another --output-dir (nothing was deleted)"
    )


def check_not_in_use(output_dir: str) -> None:
    """An error if a live run holds the directory; creates nothing."""
    if storage.is_remote(output_dir):
        try:
            storage.StoreLock(os.path.join(output_dir, LOCK_FILE)).check_free()
        except storage.LockHeldError as exc:
            raise _in_use_error(output_dir, str(exc)) from None
        return
    path = os.path.join(output_dir, LOCK_FILE)
    if fcntl is None or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        _try_lock(handle, output_dir)  # released when the file closes


@contextlib.contextmanager
def hold_output_dir(output_dir: str, *, overwrite: bool = False) -> Iterator[storage.StoreLock | None]:
    """Hold the directory for one run: other runs (processes or threads) fail while it lasts.

    On an object store, a lock object created only if absent (`storage.StoreLock`), which
    this yields; `overwrite` is refused on a store that cannot do such conditional writes,
    as two runs could then delete each other's files.

    An advisory `flock` on `DIR/.dask-prep.lock`: the kernel releases it when the holder
    ends in any way, so a crashed run leaves no stale lock. It also holds between hosts on
    file systems with working `flock` (NFSv4, Lustre with `flock`), not on all of them.
    """
    if storage.is_remote(output_dir):
        with _hold_store_prefix(output_dir, overwrite) as lock:
            yield lock
        return
    os.makedirs(output_dir, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(os.path.join(output_dir, LOCK_FILE), "a+", encoding="utf-8") as handle:
        _try_lock(handle, output_dir)
        try:
            handle.seek(0)
            handle.truncate()
            started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": started}, handle)
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _hold_store_prefix(output_dir: str, overwrite: bool) -> Iterator[storage.StoreLock]:
    try:
        with storage.hold_store_prefix(output_dir, LOCK_FILE) as lock:
            if not lock.conditional:
                if overwrite:
                    raise OutputDirError(
                        f"the store of {output_dir!r} cannot do conditional (create-only-if-absent) writes, so "
                        "dask-prep cannot keep a second run out: --overwrite is refused there (nothing was "
                        "deleted); delete the prefix yourself, or write into a new one"
                    )
                warnings.warn(
                    f"the store of {output_dir!r} cannot do conditional writes: dask-prep cannot stop another run "
                    "from writing into the same prefix at the same time",
                    stacklevel=3,
                )
            yield lock
    except storage.LockHeldError as exc:
        raise _in_use_error(output_dir, str(exc)) from None


def _check_store_prefix(output_dir: str, overwrite: bool) -> bool:
    storage.check_bucket(output_dir)
    if storage.isfile(output_dir):
        raise OutputDirError(f"--output-dir {output_dir!r} is an object, not a prefix; give a prefix")
    has_content = bool(set(storage.listdir(output_dir)) - {LOCK_FILE})
    if has_content and not overwrite:
        raise OutputDirError(
            f"--output-dir {output_dir!r} is not empty; pass --overwrite to replace it (nothing was deleted)"
        )
    return has_content


def check_output_dir(output_dir: str, *, overwrite: bool = False) -> bool:
    """Whether the directory has content to replace; an error if that is not allowed."""
    if storage.is_remote(output_dir):
        return _check_store_prefix(output_dir, overwrite)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputDirError(f"--output-dir {output_dir!r} is a file; give a directory")
    has_content = os.path.isdir(output_dir) and bool(set(os.listdir(output_dir)) - {LOCK_FILE})
    if has_content and not overwrite:
        raise OutputDirError(
            f"--output-dir {output_dir!r} is not empty; pass --overwrite to replace it (nothing was deleted)"
        )
    return has_content


def prepare_output_dir(output_dir: str, *, overwrite: bool = False) -> None:
    """An empty directory, but for the lock file of the run that holds it."""
    if storage.is_remote(output_dir):
        if check_output_dir(output_dir, overwrite=overwrite):
            for name in storage.listdir(output_dir):
                if name != LOCK_FILE:
                    storage.remove(os.path.join(output_dir, name))
        return
    if check_output_dir(output_dir, overwrite=overwrite):
        for name in os.listdir(output_dir):
            path = os.path.join(output_dir, name)
            if name == LOCK_FILE:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    os.makedirs(output_dir, exist_ok=True)


MANIFEST_VERSIONS = (
    "dask-prep",
    "dask",
    "distributed",
    "kiwipiepy",
    "kiwipiepy_model",
    "transformers",
    "tokenizers",
    "datasets",
    "pyarrow",
    "fsspec",
)


def _input_records(files: list) -> list[dict[str, Any]]:
    # What the store offers to tell a changed file: size, modification time, and its ETag
    # where there is one (object stores).
    return [{"path": file.path, "key": file.key, **storage.signature(file.path)} for file in files]


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in MANIFEST_VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def versions() -> dict[str, str | None]:
    """Installed versions of dask-prep and the packages that decide its output."""
    return _versions()


def write_manifest(layout: Layout, files: list, config: Any, partition_size_used: int) -> None:
    """What this output was made from: inputs, full config and its hash, versions."""
    write_json_atomically(
        {
            "inputs": _input_records(files),
            "partition_size_used": partition_size_used,
            "config": config.to_dict(),
            "config_hash": config.config_hash(),
            "versions": _versions(),
        },
        layout.manifest,
    )


def check_resumable(layout: Layout, files: list, config: Any) -> None:
    """--resume only continues the same run: same inputs (size, mtime) and same config."""
    if not storage.exists(layout.manifest):
        raise OutputDirError(
            f"cannot resume: {layout.manifest} does not exist; run without --resume "
            "(add --overwrite to replace the directory)"
        )
    manifest = read_json(layout.manifest)
    if manifest["config_hash"] != config.config_hash():
        changed = _changed_fields(manifest["config"], config.to_dict())
        raise OutputDirError(
            f"cannot resume: the config changed since the interrupted run ({', '.join(changed)}); "
            "rerun with the same options, or start afresh with --overwrite"
        )
    if manifest["inputs"] != _input_records(files):
        before = {r["path"] for r in manifest["inputs"]}
        now = {r["path"] for r in _input_records(files)}
        detail = (
            f"added {sorted(now - before)}, removed {sorted(before - now)}"
            if before != now
            else ("a file's size, modification time or ETag differs")
        )
        raise OutputDirError(
            f"cannot resume: the inputs changed since the interrupted run ({detail}); start afresh with --overwrite"
        )


def _changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed


def _with_file_named(write: Any, path: str) -> Any:
    """`write()`; an out-of-space (or quota) error names what was being written."""
    import errno

    try:
        return write()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and path not in str(exc):
            raise OSError(exc.errno, f"{exc.strerror} while writing {path}", exc.filename) from exc
        raise


def dataset_dir_name(seq_len: int) -> str:
    return f"entity_coref_v2_{seq_len}"


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
) -> str:
    """Convert the output parts into a saved `datasets` dataset, ordered by doc id and mention.

    Also publishes the same rows, in the same order, as `DIR/parquet/part-NNNNN.parquet`.
    The dataset is published last; its presence is the commit. Locally it is saved under a
    temporary name and renamed. On an object store (no rename) `datasets` writes it in place
    and its `state.json` and `dataset_info.json`, which `load_from_disk` needs, come last, so
    a publication cut short is never a loadable dataset (and is replaced by the next
    `--resume`). `lock` (a `storage.StoreLock`) is confirmed before anything is published.

    With `validation_fraction`, a `DatasetDict` of `train` and `validation` split by
    document (`dataset_card.split_by_document`). `description` goes into every split's
    `DatasetInfo`; `card(features, split_stats)` returns the README.md written beside the data.

    With no examples the dataset is empty but loadable, with the columns of the parts (or of
    `schema`, the output schema, when there are no parts at all).
    """
    splitting = {"validation_fraction": validation_fraction, "description": description, "card": card}
    if storage.is_remote(layout.root):
        return _write_dataset_to_store(layout, part_indices, seq_len, lock, schema, **splitting)

    parts = [layout.part("examples", i) for i in part_indices]
    final = os.path.join(layout.root, dataset_dir_name(seq_len))
    cache = os.path.join(layout.work, "hf_cache")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    dataset = _sorted_dataset(parts, cache, schema)
    write_parquet_shards(dataset, os.path.join(layout.root, PARQUET_DIR))
    save_splits(dataset, tmp, **splitting)
    del dataset
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    shutil.rmtree(cache, ignore_errors=True)
    return final


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
    from dask_prep.dataset_card import split_by_document, split_stats

    splits = split_by_document(dataset, validation_fraction) if validation_fraction else {"train": dataset}
    for split in splits.values():
        if description is not None:
            split.info.description = description
    saved = splits if validation_fraction else dataset
    # One shard even when empty: `datasets` saves 0 rows as no shard, which load_from_disk
    # cannot open (IndexError).
    empty = any(len(split) == 0 for split in splits.values())
    one_shard = ({name: 1 for name in splits} if validation_fraction else 1) if empty else None
    save = functools.partial(
        saved.save_to_disk, path, num_shards=one_shard, storage_options=storage.options_for(path) or None
    )
    _with_file_named(save, path)
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
    layout: Layout, part_indices: list[int], seq_len: int, lock: Any, schema: Any, **splitting: Any
) -> str:
    """write_dataset for an object store: parts copied to a local scratch directory first."""
    import tempfile

    final = os.path.join(layout.root, dataset_dir_name(seq_len))
    with tempfile.TemporaryDirectory(prefix="dask-prep-dataset-") as scratch:
        parts = []
        for i in part_indices:  # `datasets` reads local parquet into its Arrow cache
            local = os.path.join(scratch, "parts", part_name(i))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "wb") as handle:
                handle.write(storage.read_bytes(layout.part("examples", i)))
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
