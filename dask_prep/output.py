"""The output directory and the final `datasets` dataset.

The dataset is built from the parquet parts by `datasets` itself (streamed into an
Arrow cache, never all in memory), saved to a temporary directory and renamed, so
`DIR/entity_coref_v2_{seq_len}` exists only when it is complete. A run holds its
directory (`hold_output_dir`) so that a second run into it fails at once instead of
deleting or mixing the first one's files.
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
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"

    def write() -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)

    _with_file_named(write, path)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
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


def check_not_in_use(output_dir: str) -> None:
    """An error if a live run holds the directory; creates nothing."""
    path = os.path.join(output_dir, LOCK_FILE)
    if fcntl is None or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        _try_lock(handle, output_dir)  # released when the file closes


@contextlib.contextmanager
def hold_output_dir(output_dir: str) -> Iterator[None]:
    """Hold the directory for one run: other runs (processes or threads) fail while it lasts.

    An advisory `flock` on `DIR/.dask-prep.lock`: the kernel releases it when the holder
    ends in any way, so a crashed run leaves no stale lock. It also holds between hosts on
    file systems with working `flock` (NFSv4, Lustre with `flock`), not on all of them.
    """
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


def check_output_dir(output_dir: str, *, overwrite: bool = False) -> bool:
    """Whether the directory has content to replace; an error if that is not allowed."""
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
    import fsspec

    records = []
    for file in files:
        fs, _, (path,) = fsspec.get_fs_token_paths(file.path)
        info = fs.info(path)
        modified = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created")
        records.append({"path": file.path, "key": file.key, "size": info.get("size"), "mtime": str(modified)})
    return records


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in MANIFEST_VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


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
    if not os.path.exists(layout.manifest):
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
            else ("a file's size or modification time differs")
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


def write_dataset(layout: Layout, part_indices: list[int], seq_len: int, schema: Any = None) -> str:
    """Convert the output parts into a saved `datasets` dataset, ordered by doc id and mention.

    With no examples the dataset is empty but loadable, with the columns of the parts (or of
    `schema`, the output schema, when there are no parts at all).
    """
    import datasets
    import pyarrow.parquet as pq

    parts = [layout.part("examples", i) for i in part_indices]
    final = os.path.join(layout.root, dataset_dir_name(seq_len))
    cache = os.path.join(layout.work, "hf_cache")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
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
    # One shard even when empty: `datasets` saves 0 rows as no shard, which load_from_disk
    # cannot open (IndexError).
    save = functools.partial(dataset.save_to_disk, tmp, num_shards=1 if len(dataset) == 0 else None)
    _with_file_named(save, tmp)
    del save, dataset
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    shutil.rmtree(cache, ignore_errors=True)
    return final
