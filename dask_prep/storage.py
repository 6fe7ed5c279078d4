"""Where files live: local paths or any fsspec URL (s3://, gs://, abfs://, hf://, file://).

Local paths keep POSIX semantics (write under a temporary name, then rename). An object
store has no rename, so every object is written in one request under its final name
(`write_bytes`): nothing partly written is ever visible there. fsspec's buffered writer is
never used for a final name, because its `__exit__` closes, and so commits, the object
even when the block raised.

Credentials and endpoints come from the backend's own configuration (for S3 the `AWS_*`
variables, `AWS_ENDPOINT_URL` included) and from `--storage-options`, which `configure()`
installs as fsspec's per-protocol defaults, in this process and (through a worker plugin,
cluster.py) on every worker.

One run per output prefix: on a local directory a `flock` (output.py); on an object store
`StoreLock`, an object created only if absent (S3 `If-None-Match: *`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import posixpath
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec

log = logging.getLogger(__name__)

LOCAL_PROTOCOLS = ("file", "local")
# The optional extra that installs each backend, where dask-prep declares one.
EXTRAS = {"s3fs": "dask-prep[s3]"}
# A lock object not renewed for this long is stale: its run is taken to be gone.
LOCK_LEASE_SECONDS = 120.0
# Modules whose exceptions mean "the store said no or could not be reached".
_STORE_ERROR_MODULES = (
    "botocore",
    "aiobotocore",
    "aiohttp",
    "s3fs",
    "gcsfs",
    "adlfs",
    "azure",
    "google",
    "huggingface_hub",
    "requests",
    "urllib3",
    "httpx",
    "httpcore",
)


class StorageError(OSError):
    """A store that cannot be used: backend not installed, unreachable, forbidden, no bucket."""


def protocol_of(path: str) -> str:
    return path.split("://", 1)[0].lower() if "://" in path else "file"


def is_remote(path: str) -> bool:
    """Whether `path` is a URL of a store other than the local file system."""
    return protocol_of(path) not in LOCAL_PROTOCOLS


def normalize(path: str) -> str:
    """A local path made absolute (file:// stripped); a store URL without a trailing slash."""
    if is_remote(path):
        return path.rstrip("/")
    if path.lower().startswith(("file://", "local://")):
        path = path.split("://", 1)[1]
    return os.path.abspath(path)


def backend_package(protocol: str) -> str | None:
    """The package fsspec needs for `protocol` (e.g. s3 -> s3fs), if it is a known one."""
    from fsspec.registry import known_implementations

    known = known_implementations.get(protocol)
    if known is None:
        return None
    return known["class"].split(".", 1)[0]


def install_hint(protocol: str) -> str:
    package = backend_package(protocol) or f"the fsspec backend for {protocol}://"
    extra = EXTRAS.get(package)
    return f'pip install "{extra}" (or pip install {package})' if extra else f"pip install {package}"


def filesystem(path: str) -> tuple[Any, str]:
    """(fsspec file system, path within it); a missing backend is a one-line StorageError."""
    try:
        return fsspec.core.url_to_fs(path)
    except ImportError as exc:
        protocol = protocol_of(path)
        raise StorageError(
            f"{path!r} needs the {backend_package(protocol) or protocol} package, which is not installed: "
            f"{install_hint(protocol)}"
        ) from exc
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise StorageError(f"{path!r}: no fsspec backend knows the protocol {protocol_of(path)}://") from exc
        raise


def check_backend(path: str) -> None:
    """Fail now, with the package to install, if `path`'s backend is not importable."""
    if is_remote(path):
        filesystem(path)


def is_store_error(exc: BaseException) -> bool:
    """An error raised by a store's client library (connection refused, access denied...)."""
    return any(type(exc).__module__.startswith(m) for m in _STORE_ERROR_MODULES)


def describe(exc: BaseException) -> str:
    """One line for a store error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


# ---- configuration ----------------------------------------------------------------------


def configure(storage_options: dict[str, Any] | None, urls: list[str]) -> dict[str, dict[str, Any]]:
    """Install `storage_options` as fsspec's defaults for the protocols of `urls`.

    Returns {protocol: options}, for `apply()` on the workers.
    """
    if not storage_options:
        return {}
    by_protocol = {protocol_of(u): dict(storage_options) for u in urls if is_remote(u)}
    apply(by_protocol)
    return by_protocol


def apply(by_protocol: dict[str, dict[str, Any]]) -> None:
    """Make these options every new fsspec file system's defaults in this process."""
    for protocol, options in by_protocol.items():
        fsspec.config.conf[protocol] = {**fsspec.config.conf.get(protocol, {}), **options}
    if by_protocol:
        fsspec.AbstractFileSystem.clear_instance_cache()


def options_for(path: str) -> dict[str, Any]:
    """The storage options of `path`'s protocol (what `datasets` needs to be given)."""
    return dict(fsspec.config.conf.get(protocol_of(path), {})) if is_remote(path) else {}


# ---- reading and listing ----------------------------------------------------------------


def _fresh(path: str) -> tuple[Any, str]:
    """The file system of `path` with its listing cache dropped: other processes write there."""
    fs, inner = filesystem(path)
    fs.invalidate_cache()
    return fs, inner


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    fs, inner = _fresh(path)
    return fs.exists(inner)


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    fs, inner = _fresh(path)
    return fs.isdir(inner)


def isfile(path: str) -> bool:
    if not is_remote(path):
        return os.path.isfile(path)
    fs, inner = _fresh(path)
    return fs.isfile(inner)


def listdir(path: str) -> list[str]:
    """Names directly under `path` (an object store's "directory" is a key prefix)."""
    if not is_remote(path):
        return os.listdir(path) if os.path.isdir(path) else []
    fs, inner = _fresh(path)
    if not fs.exists(inner):
        return []
    return [posixpath.basename(p.rstrip("/")) for p in fs.ls(inner, detail=False)]


def glob(pattern: str) -> list[str]:
    """Sorted matches, as URLs for a store."""
    if not is_remote(pattern):
        import glob as _glob

        return sorted(_glob.glob(pattern))
    fs, inner = _fresh(pattern)
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(inner))


def open_read(path: str) -> IO[bytes]:
    if not is_remote(path):
        return open(path, "rb")
    fs, inner = filesystem(path)
    return fs.open(inner, "rb")


def read_bytes(path: str) -> bytes:
    with open_read(path) as handle:
        return handle.read()


def read_json(path: str) -> Any:
    return json.loads(read_bytes(path).decode("utf-8"))


def info(path: str) -> dict[str, Any]:
    fs, inner = filesystem(path)
    return fs.info(inner)


def signature(path: str) -> dict[str, Any]:
    """What the store says identifies a file's content: size, modification time, ETag."""
    found = info(path)
    modified = found.get("mtime") or found.get("LastModified") or found.get("updated") or found.get("created")
    record = {"size": found.get("size"), "mtime": str(modified)}
    etag = found.get("ETag") or found.get("etag") or found.get("md5Hash")
    if etag:
        record["etag"] = str(etag).strip('"')
    return record


# ---- writing ----------------------------------------------------------------------------


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file under its final name, all or nothing.

    Locally: a temporary name, then rename. On a store: one request (a multipart upload
    for a large object, invisible until it completes), never a buffered writer.
    """
    if not is_remote(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    fs, inner = filesystem(path)
    fs.pipe_file(inner, bytes(data))


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(data: Any, path: str) -> None:
    write_text(path, json.dumps(data, ensure_ascii=False, indent=1))


def remove(path: str) -> None:
    """Remove a file or a whole tree (a prefix on a store); nothing if absent."""
    if not is_remote(path):
        import shutil

        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        return
    fs, inner = _fresh(path)
    if fs.exists(inner):
        fs.rm(inner, recursive=True)


def check_bucket(url: str) -> None:
    """The bucket (container) of a store URL must exist and be reachable: one line if not."""
    fs, inner = filesystem(url)
    bucket = inner.split("/", 1)[0]
    try:
        fs.invalidate_cache()
        found = fs.exists(bucket)
    except (PermissionError, OSError) as exc:
        raise StorageError(f"cannot use {url!r}: {describe(exc)}") from exc
    except Exception as exc:
        if is_store_error(exc):
            raise StorageError(f"cannot reach the store of {url!r}: {describe(exc)}") from exc
        raise
    if not found:
        raise StorageError(
            f"cannot use {url!r}: the bucket {bucket!r} does not exist or is not visible with these "
            "credentials; create it or check the URL"
        )


# ---- one run per output prefix on a store ---------------------------------------------


class LockHeldError(StorageError):
    """Another live run holds the output prefix."""


class ConditionalWritesUnsupported(RuntimeError):
    """The store does not refuse a create-only-if-absent write of an existing object."""


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

    def __init__(self, url: str, *, lease: float = LOCK_LEASE_SECONDS) -> None:
        self.url = url
        self.lease = lease
        self.fs, self.inner = filesystem(url)
        self.token = uuid.uuid4().hex
        self.started = _now().isoformat(timespec="seconds")
        self.etag: str | None = None
        self.lost: str | None = None  # why the lock is no longer ours, if it is not
        self.conditional = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
            content = json.loads(self.fs.cat_file(self.inner) or b"{}")
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
            raise LockHeldError(f"another run took over the stale lock first ({describe(exc)})") from exc
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
        self._thread = threading.Thread(target=self._renew_loop, name="dask-prep-lock", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 4):
            try:
                self.renew()
            except LockHeldError:  # the run learns of it before publishing (`confirm`)
                log.error("%s", self.lost)
                return
            except Exception as exc:  # a passing store error: the lease allows a few misses
                log.warning("the lock %s could not be renewed now: %s", self.url, describe(exc))

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

    def confirm(self) -> None:
        """LockHeldError if the lock is no longer this run's (before publishing)."""
        if self.lost:
            raise LockHeldError(self.lost)
        held = self.holder()
        if held is None or held[0].get("token") != self.token:
            self.lost = f"the lock {self.url} is no longer held by this run"
            raise LockHeldError(self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(Exception):
            held = self.holder()
            if held is not None and held[0].get("token") == self.token:
                self.fs.rm_file(self.inner)


@contextlib.contextmanager
def hold_store_prefix(url: str, lock_name: str, *, lease: float = LOCK_LEASE_SECONDS) -> Iterator[StoreLock]:
    lock = StoreLock(posixpath.join(url, lock_name), lease=lease)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
