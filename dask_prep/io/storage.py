"""Where files live: local paths or any fsspec URL (s3://, gs://, abfs://, hf://, file://).

Local paths keep POSIX semantics (`writing`: a temporary name, then rename). An object
store has no rename, so every object is written in one request under its final name
(`write_bytes`): nothing partly written is ever visible there. fsspec's buffered writer is
never used for a final name, because its `__exit__` closes, and so commits, the object
even when the block raised.

Credentials and endpoints come from the backend's own configuration (for S3 the `AWS_*`
variables, `AWS_ENDPOINT_URL` included) and from `--storage-options`, which `configure()`
installs, over bounded timeouts and retries (`STORE_DEFAULTS`), as fsspec's per-protocol
defaults, in this process and (through a worker plugin, cluster.py) on every worker.

One run per output prefix: on a local directory a `flock` (output.py); on an object store
a lock object created only if absent (store_lock.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

import fsspec

from dask_prep.io.disk_space import naming_the_file

LOCAL_PROTOCOLS = ("file", "local")
# The optional extra that installs each backend, where dask-prep declares one.
EXTRAS = {"s3fs": "dask-prep[s3]"}
# Modules whose exceptions mean "the store said no or could not be reached".
_STORE_ERROR_MODULES = (
    "botocore",
    "aiobotocore",
    "fsspec.exceptions",
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


# Every store request is bounded, so that a store that stops answering fails the run (exit 2,
# one line) instead of hanging it. S3: botocore gives up on a connection or a silent socket
# (3 s, 2 s between bytes) and tries a request twice; s3fs tries each call 5 times over that
# (its `retries`), so a call to a stopped store fails within about 5 × 2 × 2 s (s3_requests.py
# bounds uploads and reads, which would wait longer). `--storage-options` override these key
# by key (e.g. `{"config_kwargs": {"read_timeout": 30}}`).
_S3_CONFIG = {"connect_timeout": 3, "read_timeout": 2, "retries": {"total_max_attempts": 2, "mode": "standard"}}
STORE_DEFAULTS: dict[str, dict[str, Any]] = {"s3": {"config_kwargs": _S3_CONFIG}}


def _with_defaults(protocol: str, given: dict[str, Any]) -> dict[str, Any]:
    options = {**STORE_DEFAULTS.get(protocol, {}), **given}
    if "config_kwargs" in STORE_DEFAULTS.get(protocol, {}):
        options["config_kwargs"] = {**STORE_DEFAULTS[protocol]["config_kwargs"], **given.get("config_kwargs", {})}
    if protocol == "s3":
        from dask_prep.io.s3_requests import with_bounded_uploads

        options["config_kwargs"] = with_bounded_uploads(options["config_kwargs"])
    return options


def configure(storage_options: dict[str, Any] | None, urls: list[str]) -> dict[str, dict[str, Any]]:
    """Install `storage_options`, over the bounded timeouts and retries of `STORE_DEFAULTS`,
    as fsspec's defaults for the protocols of `urls`: the one place where stores are configured.

    Returns {protocol: options}, for `apply()` on the workers.
    """
    protocols = {protocol_of(u) for u in urls if is_remote(u)}
    by_protocol = {
        protocol: _with_defaults(protocol, dict(storage_options or {}))
        for protocol in sorted(protocols)
        if storage_options or protocol in STORE_DEFAULTS
    }
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
    if is_remote(path):  # one GET: an object replaced meanwhile is read whole, old or new
        fs, inner = filesystem(path)
        if protocol_of(path) != "s3":
            return fs.cat_file(inner)
        from dask_prep.io.s3_requests import read_whole  # s3fs retries a read inside its retries

        return read_whole(fs, inner, path)
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


# Entered around a file's publication (rename, or request): a run's fence (output/fencing.py).
CommitGuard = Callable[[], AbstractContextManager[Any]]


@contextlib.contextmanager
def writing(path: str, *, text: bool = False, guard: CommitGuard | None = None) -> Iterator[IO[Any]]:
    """A file to write `path` through, published whole only if the block ends without error.

    Locally: a temporary name unique to this writer (writers of one path never share it),
    renamed over `path`. On a store: the content gathered in memory, then one request
    under the final name (`write_bytes`). The publication happens inside `guard()`, if given.
    """
    if is_remote(path):
        buffer: IO[Any] = io.StringIO() if text else io.BytesIO()
        with naming_the_file(path):
            yield buffer
        data = buffer.getvalue()
        write_bytes(path, data.encode("utf-8") if text else data, guard=guard)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with naming_the_file(path), open(tmp, "w" if text else "wb", encoding="utf-8" if text else None) as handle:
            yield handle
        with guard() if guard is not None else contextlib.nullcontext():
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path: str, data: bytes, *, guard: CommitGuard | None = None) -> None:
    """Write a whole file under its final name, all or nothing (see `writing`).

    On a store one request (a multipart upload for a large object, invisible until it
    completes), never a buffered writer.
    """
    if not is_remote(path):
        with writing(path, guard=guard) as handle:
            handle.write(data)
        return
    fs, inner = filesystem(path)
    with guard() if guard is not None else contextlib.nullcontext():
        fs.pipe_file(inner, bytes(data))


def write_text(path: str, text: str, *, guard: CommitGuard | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), guard=guard)


def write_json(data: Any, path: str, *, indent: int = 1, guard: CommitGuard | None = None) -> None:
    with writing(path, text=True, guard=guard) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=indent)


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
