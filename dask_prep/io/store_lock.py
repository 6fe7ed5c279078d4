"""One run per output prefix on an object store: a lock object created only if absent.

S3's `If-None-Match: *` makes the create fail when the object exists; the holder renews
the object with `If-Match` on its own ETag, so a run that lost it notices. On a local
directory the lock is a `flock` instead (output.py).
"""

from __future__ import annotations

import _thread
import contextlib
import datetime
import json
import logging
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from dask_prep.io import storage

log = logging.getLogger(__name__)

# A lock object not renewed for this long is stale: its run is taken to be gone.
LOCK_LEASE_SECONDS = 120.0
# At most this long, on release, to delete the lock object: a store that does not answer
# must not keep an ending run (or a Ctrl-C) waiting; the lock then goes stale by itself.
RELEASE_SECONDS = 3.0


class LockHeldError(storage.StorageError):
    """Another live run holds the output prefix."""


class LockLostError(storage.StorageError):
    """This run's lock could not be renewed for a whole lease: the run must stop."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _etag(response: Any, fs: Any, inner: str) -> str | None:
    if isinstance(response, dict) and response.get("ETag"):
        return response["ETag"]
    return fs.info(inner).get("ETag")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLock:
    """A lock object under an output prefix, created only if absent and renewed while held.

    The object holds the holder's host, pid, start and last renewal. It is rewritten every
    `lease / 4` seconds with `If-Match` on its own ETag (so a run that lost it notices), and
    a lock whose last write (the store's LastModified) is older than `lease` seconds is
    stale: its run crashed or was killed, and the next run takes it over, again with
    `If-Match`, so two runs taking over the same stale lock cannot both win. A lock left by
    a process of this host that no longer exists is stale at once. Hosts' clocks must agree
    to well within the lease.
    """

    def __init__(self, url: str, *, lease: float | None = None, token: str | None = None) -> None:
        self.url = url
        self.lease = LOCK_LEASE_SECONDS if lease is None else lease  # read now: a test may shorten it
        self.fs, self.inner = storage.filesystem(url)
        self.token = token or uuid.uuid4().hex  # the run's identity, if it has one (output/fencing.py)
        self.started = _now().isoformat(timespec="seconds")
        self.etag: str | None = None
        self.lost: str | None = None  # why the lock is no longer ours, if it is not
        self.conditional = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = time.monotonic()  # the last write of the lock object that succeeded
        self._interrupt_main = False  # whether a lost lock interrupts the main thread (the run is there)

    def _content(self) -> bytes:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": self.started,
                "renewed": _now().isoformat(timespec="seconds"),
                "lease_seconds": self.lease,
                "token": self.token,
            }
        ).encode()

    def holder(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(content, object info) of the lock object, or None if there is none."""
        self.fs.invalidate_cache()
        try:
            found = self.fs.info(self.inner)
            content = json.loads(storage.read_bytes(self.url) or b"{}")  # a bounded read
        except FileNotFoundError:
            return None
        except ValueError:
            content = {}
        return content, found

    def stale(self, content: dict[str, Any], found: dict[str, Any]) -> bool:
        if content.get("host") == socket.gethostname() and isinstance(content.get("pid"), int):
            if content["pid"] != os.getpid() and not _pid_alive(content["pid"]):
                return True
        written = found.get("LastModified") or found.get("mtime") or found.get("updated")
        if isinstance(written, str):
            written = datetime.datetime.fromisoformat(written.replace("Z", "+00:00"))
        if isinstance(written, (int, float)):
            written = datetime.datetime.fromtimestamp(written, datetime.timezone.utc)
        if not isinstance(written, datetime.datetime):
            return False
        if written.tzinfo is None:
            written = written.replace(tzinfo=datetime.timezone.utc)
        return (_now() - written).total_seconds() > self.lease

    def describe_holder(self, content: dict[str, Any]) -> str:
        return (
            f"pid {content.get('pid', '?')} on {content.get('host', '?')}, started {content.get('started', '?')}, "
            f"last renewed {content.get('renewed', '?')}; a lock not renewed for {self.lease:.0f} s is stale"
        )

    def check_free(self) -> None:
        """LockHeldError if a live run holds the lock; creates nothing."""
        held = self.holder()
        if held is not None and not self.stale(*held):
            raise LockHeldError(self.describe_holder(held[0]))

    def acquire(self) -> None:
        try:
            response = self.fs.pipe_file(self.inner, self._content(), mode="create")
        except FileExistsError:
            self._take_over_if_stale()
            return
        except (TypeError, NotImplementedError, ValueError) as exc:  # the backend has no create mode
            log.debug("no create-only write on %s: %s", self.url, exc)
            self.conditional = False
            self._acquire_unconditionally()
            return
        self.etag = _etag(response, self.fs, self.inner)
        # A store that ignores If-None-Match would let this second create succeed.
        try:
            self.fs.pipe_file(self.inner, self._content(), mode="create")
        except FileExistsError:
            pass
        else:
            self.conditional = False
            self.etag = self.fs.info(self.inner).get("ETag")
        self._start_renewing()

    def _take_over_if_stale(self) -> None:
        held = self.holder()
        if held is None:  # released meanwhile: try once more
            return self.acquire()
        content, found = held
        if not self.stale(content, found):
            raise LockHeldError(self.describe_holder(content))
        log.warning("taking over the stale lock %s (%s)", self.url, self.describe_holder(content))
        try:
            response = self.fs.pipe_file(self.inner, self._content(), IfMatch=found.get("ETag"))
        except (FileExistsError, OSError) as exc:
            raise LockHeldError(f"another run took over the stale lock first ({storage.describe(exc)})") from exc
        self.etag = _etag(response, self.fs, self.inner)
        self._start_renewing()

    def _acquire_unconditionally(self) -> None:
        held = self.holder()
        if held is not None and not self.stale(*held):
            raise LockHeldError(self.describe_holder(held[0]))
        self.fs.pipe_file(self.inner, self._content())
        self.etag = self.fs.info(self.inner).get("ETag")
        self._start_renewing()

    def _start_renewing(self) -> None:
        self._renewed = time.monotonic()
        self._interrupt_main = threading.current_thread() is threading.main_thread()
        self._thread = threading.Thread(target=self._renew_loop, name="dask-prep-lock", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        # Each renewal runs in a thread of its own, waited for a quarter lease at most: a request
        # that never returns (one no timeout bounds: s3_requests.py removes the one known) counts
        # as a failed renewal instead of stopping the count.
        renewing: threading.Thread | None = None
        outcome: list[BaseException | None] = []
        while not self._stop.wait(self.lease / 4):
            if renewing is None or not renewing.is_alive():  # never two renewals at once
                outcome = []
                renewing = threading.Thread(target=self._renew_into, args=(outcome,), daemon=True)
                renewing.start()
                renewing.join(timeout=self.lease / 4)
            error = outcome[0] if outcome else TimeoutError(f"no answer in {self.lease / 4:.0f} s")
            if isinstance(error, LockHeldError):  # the run learns of it before publishing (`confirm`)
                log.error("%s", self.lost)
                return
            if error is not None:  # a passing store error: the lease allows a few misses
                log.info("the lock %s could not be renewed now: %s", self.url, storage.describe(error))
                if time.monotonic() - self._renewed > self.lease:
                    self._give_up(error)
                    return

    def _renew_into(self, outcome: list[BaseException | None]) -> None:
        try:
            self.renew()
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    def _give_up(self, exc: BaseException) -> None:
        """Not renewed for a whole lease: another run may take the prefix now, so this one stops.

        The run learns of it through `lost` (checked by `confirm` before anything is
        published); a run in the main thread is interrupted at once (`PipelineRun` turns that
        interrupt into this one-line error).
        """
        if self._stop.is_set():
            return
        self.lost = (
            f"the lock {self.url} could not be renewed for {self.lease:.0f} s ({storage.describe(exc)}), so "
            "another run may take the prefix over: this run stops; when the store answers again, run the same "
            "command with --resume"
        )
        if self._interrupt_main:
            _thread.interrupt_main()

    def renew(self) -> None:
        match = {"IfMatch": self.etag} if self.conditional and self.etag else {}
        try:
            response = self.fs.pipe_file(self.inner, self._content(), **match)
        except OSError as exc:  # 412: someone else's lock now
            if "pre-condition" in str(exc) or "Precondition" in str(exc) or isinstance(exc, FileExistsError):
                self.lost = f"another run took over the lock {self.url}"
                raise LockHeldError(self.lost) from exc
            raise
        self.etag = _etag(response, self.fs, self.inner)
        self._renewed = time.monotonic()

    def confirm(self) -> None:
        """LockHeldError if the lock is no longer this run's (before publishing)."""
        if self.lost:
            raise LockHeldError(self.lost)
        held = self.holder()
        if held is None or held[0].get("token") != self.token:
            self.lost = f"the lock {self.url} is no longer held by this run"
            raise LockHeldError(self.lost)

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still ours, within `RELEASE_SECONDS`."""
        self._stop.set()
        deleting = threading.Thread(target=self._delete_if_ours, name="dask-prep-lock-release", daemon=True)
        deleting.start()
        deleting.join(timeout=RELEASE_SECONDS)
        if deleting.is_alive():
            log.info("the lock %s was not deleted (the store did not answer); it goes stale by itself", self.url)

    def _delete_if_ours(self) -> None:
        if self._thread is not None:
            self._thread.join()  # a renewal in flight lands before the lock is deleted
        with contextlib.suppress(Exception):
            held = self.holder()
            if held is not None and held[0].get("token") == self.token:
                self.fs.rm_file(self.inner)


@contextlib.contextmanager
def hold_store_prefix(
    url: str, lock_name: str, *, lease: float | None = None, token: str | None = None
) -> Iterator[StoreLock]:
    lock = StoreLock(posixpath.join(url, lock_name), lease=lease, token=token)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
