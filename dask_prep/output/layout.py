"""The output directory: where each file lives, who holds it, and what it was made from.

A run holds its directory (`hold_output_dir`) so that a second run into it fails at once
instead of deleting or mixing the first one's files. The manifest records the inputs,
config and versions, so that `--resume` only continues the same run. The final dataset
is published by publish.py.

`DIR` may also be an object-store URL (`s3://bucket/prefix`): there every file goes
through `storage` (one request under the final name, no rename) and the lock is a
conditional-write object (store_lock.py).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from dask_prep.io import storage
from dask_prep.io.store_lock import LockHeldError, StoreLock, hold_store_prefix

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: runs are not guarded there
    fcntl = None  # type: ignore[assignment]

WORK_DIR = "_work"
LOCK_FILE = ".dask-prep.lock"  # flock'ed by the run writing the directory; left behind, harmless
FENCE_FILE = ".dask-prep.fence"  # flock'ed around local commits (fencing.py); left behind, harmless
RUN_FILES = (LOCK_FILE, FENCE_FILE)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class Layout:
    """Where each file of a run lives under the output directory.

    `token` is the run's identity (fencing.py), carried by its tasks; `earlier`, the tokens
    of the runs it resumes. Without a token (a partition analysed outside a run) nothing is fenced.
    """

    root: str
    token: str | None = None
    earlier: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """The runs whose files this run may read as its own: itself and those it resumes."""
        return (self.token or "", *self.earlier)

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
        raise _in_use_error(output_dir, who) from None


def _in_use_error(output_dir: str, holder: str) -> OutputDirError:
    return OutputDirError(
        f"--output-dir {output_dir!r} is in use by another dask-prep run ({holder}); wait for it to "
        "finish or choose another --output-dir (nothing was deleted)"
    )


def check_not_in_use(output_dir: str) -> None:
    """An error if a live run holds the directory; creates nothing."""
    if storage.is_remote(output_dir):
        try:
            StoreLock(os.path.join(output_dir, LOCK_FILE)).check_free()
        except LockHeldError as exc:
            raise _in_use_error(output_dir, str(exc)) from None
        return
    path = os.path.join(output_dir, LOCK_FILE)
    if fcntl is None or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        _try_lock(handle, output_dir)  # released when the file closes


@contextlib.contextmanager
def hold_output_dir(
    output_dir: str, *, overwrite: bool = False, token: str | None = None
) -> Iterator[StoreLock | None]:
    """Hold the directory for one run: other runs (processes or threads) fail while it lasts.

    On an object store, a lock object created only if absent (`StoreLock`), which
    this yields; `overwrite` is refused on a store that cannot do such conditional writes,
    as two runs could then delete each other's files.

    An advisory `flock` on `DIR/.dask-prep.lock`: the kernel releases it when the holder
    ends in any way, so a crashed run leaves no stale lock. It also holds between hosts on
    file systems with working `flock` (NFSv4, Lustre with `flock`), not on all of them.

    `token`, the run's identity, is written into the lock (fencing.py).
    """
    if storage.is_remote(output_dir):
        with _hold_store_prefix(output_dir, overwrite, token) as lock:
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
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": started, "run": token}, handle)
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _hold_store_prefix(output_dir: str, overwrite: bool, token: str | None) -> Iterator[StoreLock]:
    try:
        with hold_store_prefix(output_dir, LOCK_FILE, token=token) as lock:
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
    except LockHeldError as exc:
        raise _in_use_error(output_dir, str(exc)) from None


def check_output_dir(output_dir: str, *, overwrite: bool = False) -> bool:
    """Whether the directory has content to replace; an error if that is not allowed."""
    if storage.is_remote(output_dir):
        storage.check_bucket(output_dir)
        if storage.isfile(output_dir):
            raise OutputDirError(f"--output-dir {output_dir!r} is an object, not a prefix; give a prefix")
    elif os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputDirError(f"--output-dir {output_dir!r} is a file; give a directory")
    has_content = bool(set(storage.listdir(output_dir)) - set(RUN_FILES))
    if has_content and not overwrite:
        raise OutputDirError(
            f"--output-dir {output_dir!r} is not empty; pass --overwrite to replace it (nothing was deleted)"
        )
    return has_content


def prepare_output_dir(output_dir: str, *, overwrite: bool = False) -> None:
    """An empty directory, but for the lock file of the run that holds it."""
    if check_output_dir(output_dir, overwrite=overwrite):
        for name in storage.listdir(output_dir):
            if name not in RUN_FILES:
                storage.remove(os.path.join(output_dir, name))
    if not storage.is_remote(output_dir):
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


def _input_record(file: Any) -> dict[str, Any]:
    # What the store offers to tell a changed file: size, modification time, and its ETag
    # where there is one (object stores).
    return {"path": file.path, "key": file.key, **storage.signature(file.path)}


def _input_records(files: list) -> list[dict[str, Any]]:
    return [_input_record(file) for file in files]


def versions() -> dict[str, str | None]:
    """Installed versions of dask-prep and the packages that decide its output."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in MANIFEST_VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def write_manifest(
    layout: Layout, files: list, config: Any, partition_size_used: int, partitions: int | None = None, **more: Any
) -> None:
    """What this output was made from: inputs, partitions, full config and its hash, versions.

    `more` adds fields (a derived run: `derived_from`); `inputs` may be records already.
    """
    storage.write_json(
        {
            "inputs": [f if isinstance(f, dict) else _input_record(f) for f in files],
            "partition_size_used": partition_size_used,
            "partitions": partitions,
            "config": config.to_dict(),
            "config_hash": config.config_hash(),
            "versions": versions(),
            **more,
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


def _changed_fields(old: dict, new: dict) -> list[str]:
    return [f"{name}: {a!r} -> {b!r}" for name, a, b in config_differences(old, new)]


def config_differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field name, old value, new value) of every field two config dicts differ in, sorted."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append((f"{prefix}{key}", a, b))
    return changed


def dataset_dir_name(seq_len: int) -> str:
    return f"entity_coref_v2_{seq_len}"
