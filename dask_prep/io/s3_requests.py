"""S3 requests that a silent store cannot hold forever (imported for s3:// paths only).

botocore marks every upload whose body is a file object `Expect: 100-continue`, and aiohttp
(under s3fs) then waits for the interim "100 Continue" before it sends the body. No timeout
covers that wait: `read_timeout` arms only once a read is in flight. A store that accepts the
connection and stops answering (a hung server, a stalled proxy) so holds an upload for good,
while its reads fail within their timeout. Without the header the body goes at once and the
wait for the answer is a read, bounded like any other; the cost is that a refused upload
sends its body before it hears so.
"""

from __future__ import annotations

from typing import Any

from fsspec.exceptions import FSTimeoutError

try:
    from aiobotocore.httpsession import AIOHTTPSession
except ImportError:  # no s3fs (dask-prep[s3]): storage.filesystem says what to install
    AIOHTTPSession = None


if AIOHTTPSession is not None:

    class NoContinueSession(AIOHTTPSession):
        """aiobotocore's HTTP session, sending no `Expect: 100-continue` (AioConfig's `http_session_cls`)."""

        async def send(self, request: Any) -> Any:
            request.headers.pop("Expect", None)
            return await super().send(request)


def with_bounded_uploads(config_kwargs: dict[str, Any]) -> dict[str, Any]:
    """AioConfig's options, with uploads sent without `Expect: 100-continue` unless a session is given."""
    if AIOHTTPSession is None:
        return config_kwargs
    return {"http_session_cls": NoContinueSession, **config_kwargs}


def read_seconds(fs: Any) -> float:
    """How long a whole read (`cat_file`) may take on `fs`, an s3fs file system.

    s3fs tries a call `fs.retries` times, each of botocore's attempts waiting a connection or a
    read timeout. It tries a GET's body read as many times again around that, so a read from a
    store gone silent would take `fs.retries` times as long as any other call: a read is given
    the time of one call (and s3fs's waits between tries) instead.
    """
    config = fs.config_kwargs
    retries = config.get("retries") or {}
    attempts = retries.get("total_max_attempts") or (retries.get("max_attempts", 4) + 1)
    silence = max(config.get("connect_timeout", 60), config.get("read_timeout", 60))
    return fs.retries * (attempts * silence + 2.0)


def read_whole(fs: Any, inner: str, path: str) -> bytes:
    """`fs.cat_file(inner)` within `read_seconds(fs)` (fsspec's own bound on a whole call)."""
    bound = read_seconds(fs)
    try:
        return fs.cat_file(inner, timeout=bound)
    except FSTimeoutError as exc:
        raise FSTimeoutError(f"{path}: the store did not answer in {bound:.0f} s") from exc
