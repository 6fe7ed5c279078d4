"""Fencing: a task of a run that is over never writes into, or is read as, the next run.

A killed client (Ctrl-C, a lost connection) leaves its running tasks behind: a worker thread
finishes the partition it was on, and without a fence it would write that partition's files
into a directory that another run (`--overwrite` with another config, or `--resume`) now
holds. Two guards, both keyed on the run's identity (`RunIdentity`: a token in the lock
file and in the manifest, carried by every task in its `Layout`):

- **Before a commit** (the rename of a finished part, the request that writes it on a store,
  a stats file, an attempt marker), the task checks that the lock still names its token
  (`check_holder`); if not, it stops and writes nothing (`FencedOut`). Locally the check
  and the rename happen under a shared `flock` of `DIR/.dask-prep.fence`, which a starting
  run takes exclusively once its token is in the lock: no commit checked before it lands after.
- **At read time** (the commit record): every stats file names the token of the run that
  wrote it, and a partition's files are trusted only if that token is this run's or one of
  the runs it resumes (`RunIdentity.accepted`) and every part has the rows and content hash
  its stats record. `--resume` reuses a partition on those terms; stage 2 checks its stage-1
  part, and publication the examples and decisions, against the records the run computed.
  A file that fails during a run (a straggler's commit that slipped past the first guard on a
  store) stops the run with one line (`ForeignFileError`); `--resume` recomputes it.

A resumed run gets a token of its own and lists the tokens it resumes, so a straggler of
the interrupted run is fenced out like any other, while its finished partitions are reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

from dask_prep.io import storage
from dask_prep.output.layout import FENCE_FILE, LOCK_FILE, Layout, OutputDirError
from dask_prep.stats import PartRecord

RUN_TOKEN = "run_token"  # manifest keys
EARLIER_RUN_TOKENS = "earlier_run_tokens"
STATS_RUN_KEY = "run"  # the writer's token in a stats file
FENCE_WAIT_SECONDS = 60.0

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]


class FencedOut(RuntimeError):
    """This task's run no longer holds the output directory: it must not write there."""


class ForeignFileError(OutputDirError):
    """A file read as this run's was written by another run (or changed since it was recorded)."""


class RunIdentity(NamedTuple):
    """One run's token, and the tokens of the interrupted runs whose partitions it may reuse
    (in `Layout`'s order: `Layout(root, *identity)`)."""

    token: str
    earlier: tuple[str, ...] = ()

    def manifest_fields(self) -> dict[str, Any]:
        return {RUN_TOKEN: self.token, EARLIER_RUN_TOKENS: list(self.earlier)}


def new_token() -> str:
    return uuid.uuid4().hex


def resuming(token: str, manifest: dict[str, Any]) -> RunIdentity:
    """The identity of a run resuming the run of `manifest`: that run's token and those it resumed.

    A manifest of a version without tokens gives "" (its stats name no run).
    """
    earlier = [manifest.get(RUN_TOKEN, ""), *manifest.get(EARLIER_RUN_TOKENS, [])]
    return RunIdentity(token, tuple(dict.fromkeys(earlier)))


def record_identity(layout: Layout, identity: RunIdentity) -> None:
    """Write the run's tokens into the manifest (resume: the manifest it continues)."""
    manifest = storage.read_json(layout.manifest)
    manifest.update(identity.manifest_fields())
    storage.write_json(manifest, layout.manifest)


def holder_token(root: str) -> str | None:
    """The token of the run holding `root` (from its lock file), or None (no lock, no token)."""
    path = os.path.join(root, LOCK_FILE)
    for _ in range(20):  # a starting run truncates, then writes, the local lock file
        try:
            content = storage.read_bytes(path)
        except FileNotFoundError:
            return None
        if content.strip():
            break
        time.sleep(0.05)
    try:
        holder = json.loads(content or b"{}")
    except ValueError:
        return None
    return holder.get("run") or holder.get("token")


def check_holder(layout: Layout) -> None:
    """FencedOut unless the output directory is still held by the run of `layout`."""
    if layout.token is None:
        return
    found = holder_token(layout.root)
    if found != layout.token:
        raise FencedOut(
            f"the run {layout.token[:8]} no longer holds {layout.root} (now: {found or 'nobody'}); "
            "this task of it writes nothing"
        )


@contextlib.contextmanager
def committing(layout: Layout) -> Iterator[None]:
    """Around a commit: the holder checked, and (locally) no new run may start meanwhile."""
    if layout.token is None:
        yield
        return
    if storage.is_remote(layout.root) or fcntl is None:
        check_holder(layout)
        yield
        return
    with open(os.path.join(layout.root, FENCE_FILE), "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            check_holder(layout)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def close_the_fence(root: str) -> None:
    """Once the lock names a new run: wait for every commit checked before it (locally)."""
    if storage.is_remote(root) or fcntl is None:
        return
    with open(os.path.join(root, FENCE_FILE), "a", encoding="utf-8") as handle:
        lock_exclusively(
            handle,
            FENCE_WAIT_SECONDS,
            f"a task of an earlier run has been committing a file in {root} for "
            f"{FENCE_WAIT_SECONDS:.0f} s; stop its workers, then run again",
        )
        fcntl.flock(handle, fcntl.LOCK_UN)


def lock_exclusively(handle: IO[Any], seconds: float, why: str) -> None:
    """An exclusive `flock` of the open file, waited for at most `seconds`; then `OutputDirError(why)`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise OutputDirError(why) from None
            time.sleep(0.05)


def stats_run(data: dict[str, Any]) -> str:
    return data.get(STATS_RUN_KEY, "")


def check_written_by_this_run(layout: Layout, data: dict[str, Any], path: str) -> None:
    """ForeignFileError if the stats `data` read from `path` are not of this run (or one it resumes)."""
    if layout.token is not None and stats_run(data) not in layout.accepted:
        raise ForeignFileError(
            f"{path} was written by another run ({stats_run(data)[:8] or 'unknown'}) after this one started: "
            "a task of an interrupted run still running; run the same command with --resume to redo it"
        )


def read_stats(layout: Layout, stage: str, index: int) -> dict[str, Any]:
    """A partition's stats file, checked to be of this run (`check_written_by_this_run`)."""
    path = layout.stats(stage, index)
    data = storage.read_json(path)
    check_written_by_this_run(layout, data, path)
    return data


def record_of(handle: IO[bytes]) -> PartRecord:
    """A part's rows and content hash, from a seekable open file."""
    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    while block := handle.read(1 << 20):
        digest.update(block)
    handle.seek(0)
    return PartRecord(rows=pq.ParquetFile(handle).metadata.num_rows, sha256=digest.hexdigest())


def check_part(path: str, expected: PartRecord) -> None:
    """ForeignFileError unless the part at `path` is what this run recorded for it."""
    with storage.open_read(path) as handle:
        found = record_of(handle)
    if found != expected:
        raise _differs(path, found, expected)


def verified_bytes(path: str, expected: PartRecord) -> bytes:
    """The bytes of a part, read once and checked against its record (ForeignFileError if not)."""
    data = storage.read_bytes(path)
    found = record_of(io.BytesIO(data))
    if found != expected:
        raise _differs(path, found, expected)
    return data


def _differs(path: str, found: PartRecord, expected: PartRecord) -> ForeignFileError:
    return ForeignFileError(
        f"{path} differs from what this run recorded for it (rows {found.rows} vs {expected.rows}): "
        "another run wrote it after this one started; run the same command with --resume to redo it"
    )
