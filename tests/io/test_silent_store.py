"""A store that accepts connections and never answers fails each call; it never holds one.

The "server" is a listening socket on 127.0.0.1 that accepts nothing: the kernel completes
every connection, and no byte ever comes back (a hung server, a stalled proxy). Reads time
out by botocore's `read_timeout`; an upload used to wait for good on the `Expect:
100-continue` that botocore adds to it (dask_prep/io/s3_requests.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.s3_server import CREDENTIALS, environment

# Short timeouts, so that the test's wait is seconds: s3fs's 5 tries of 1 attempt of 1 s each.
FAST_FAILURE = {
    "config_kwargs": {
        "connect_timeout": 1,
        "read_timeout": 1,
        "retries": {"total_max_attempts": 1, "mode": "standard"},
    }
}
HANG_SECONDS = 60.0  # far past the ~7 s a call takes to fail with FAST_FAILURE


@pytest.fixture
def silent_store() -> Iterator[str]:
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    import fsspec

    saved_conf = {k: dict(v) for k, v in fsspec.config.conf.items()}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with environment({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}):
            yield endpoint
    fsspec.config.conf.clear()
    fsspec.config.conf.update(saved_conf)
    fsspec.AbstractFileSystem.clear_instance_cache()


class _AnswersHeadsOnly(BaseHTTPRequestHandler):
    """An object's HEAD is answered; its GET never is (a store that stops between the two)."""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        for name, value in (("Content-Length", "10"), ("ETag", '"e"'), ("Last-Modified", self.date_time_string())):
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(HANG_SECONDS * 2)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def store_silent_on_reads() -> Iterator[str]:
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    import fsspec

    saved_conf = {k: dict(v) for k, v in fsspec.config.conf.items()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnswersHeadsOnly)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with environment({**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}"}):
            yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved_conf)
        fsspec.AbstractFileSystem.clear_instance_cache()


def _configure(endpoint: str, options: dict | None = None) -> dict:
    """FAST_FAILURE (or `options`) for s3://, on `endpoint` (explicit: each test has its own server)."""
    from dask_prep.io import storage

    return storage.configure({**(options or FAST_FAILURE), "endpoint_url": endpoint}, ["s3://bucket/x"])["s3"]


def _outcome_within(call: Callable[[], object], seconds: float) -> BaseException | None:
    """The exception `call` raised, None if it returned; AssertionError if it still ran after `seconds`."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the call still waited on the silent store {seconds:.0f} s later"
    return outcome[0]


def test_an_upload_to_a_silent_store_fails_instead_of_waiting_forever(silent_store):
    from dask_prep.io import storage

    _configure(silent_store)
    error = _outcome_within(lambda: storage.write_bytes("s3://bucket/part.parquet", b"x" * 1000), HANG_SECONDS)
    assert error is not None and storage.is_store_error(error), repr(error)


def test_reads_and_deletes_on_a_silent_store_fail_too(silent_store):
    from dask_prep.io import storage

    _configure(silent_store)
    for call in (lambda: storage.read_bytes("s3://bucket/a"), lambda: storage.remove("s3://bucket/a")):
        error = _outcome_within(call, HANG_SECONDS)
        assert error is not None and storage.is_store_error(error), repr(error)


def test_options_given_keep_the_session_without_expect_continue(silent_store):
    from dask_prep.io import s3_requests

    options = _configure(silent_store, {"config_kwargs": {"read_timeout": 30}})
    assert options["config_kwargs"]["read_timeout"] == 30
    assert options["config_kwargs"]["http_session_cls"] is s3_requests.NoContinueSession


def test_a_read_is_bounded_as_one_call_though_s3fs_retries_it_inside_its_retries(store_silent_on_reads):
    """s3fs tries a GET's body read 5 times around its own 5 tries (about 35 s with FAST_FAILURE):
    the read gives up within one call's time instead."""
    from dask_prep.io import s3_requests, storage

    _configure(store_silent_on_reads)
    bound = s3_requests.read_seconds(storage.filesystem("s3://bucket/x")[0])
    assert bound == 5 * (1 * 1 + 2.0)  # s3fs's 5 tries of 1 attempt of 1 s, and its waits
    started = time.monotonic()
    error = _outcome_within(lambda: storage.read_bytes("s3://bucket/stats.json"), HANG_SECONDS)
    assert error is not None and storage.is_store_error(error) and "did not answer in 15 s" in str(error), repr(error)
    assert time.monotonic() - started < bound + 5
