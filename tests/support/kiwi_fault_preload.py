"""A worker `--preload` for the tests: Kiwi aborts or hangs on marked documents.

A stand-in for the native failures users meet (a segfault or `std::length_error` abort
inside Kiwi, an analysis that never returns). It wraps `kiwipiepy.Kiwi.tokenize` and
`analyze` in the worker process (and so in any process forked from it): a text holding
$DASK_PREP_TEST_CRASH_MARKER calls abort(), one holding $DASK_PREP_TEST_HANG_MARKER
sleeps for a day, and one holding $DASK_PREP_TEST_GATE_MARKER waits while the file
$DASK_PREP_TEST_GATE_FILE exists (creating `FILE.reached` first): the test, not the machine's
load, decides how long that analysis runs. Nothing in the package knows about it.
"""

from __future__ import annotations

import os
import time

import kiwipiepy

CRASH_MARKER = os.environ.get("DASK_PREP_TEST_CRASH_MARKER") or None
HANG_MARKER = os.environ.get("DASK_PREP_TEST_HANG_MARKER") or None
GATE_MARKER = os.environ.get("DASK_PREP_TEST_GATE_MARKER") or None
GATE_FILE = os.environ.get("DASK_PREP_TEST_GATE_FILE") or None


def _fail_on(text: str) -> None:
    if CRASH_MARKER and CRASH_MARKER in text:
        os.abort()
    if HANG_MARKER and HANG_MARKER in text:
        time.sleep(86400)
    if GATE_MARKER and GATE_FILE and GATE_MARKER in text:
        with open(GATE_FILE + ".reached", "a", encoding="utf-8"):
            pass
        while os.path.exists(GATE_FILE):
            time.sleep(0.1)


def _wrap(method):
    def wrapped(self, text, *args, **kwargs):
        if isinstance(text, str):
            _fail_on(text)
            return method(self, text, *args, **kwargs)
        texts = list(text)

        def one_at_a_time():  # as Kiwi's batch mode: fails when it reaches the document
            for item, result in zip(texts, method(self, texts, *args, **kwargs), strict=True):
                _fail_on(item)
                yield result

        return one_at_a_time()

    wrapped.__wrapped__ = method
    return wrapped


if not getattr(kiwipiepy.Kiwi.tokenize, "__wrapped__", None):
    kiwipiepy.Kiwi.tokenize = _wrap(kiwipiepy.Kiwi.tokenize)
    kiwipiepy.Kiwi.analyze = _wrap(kiwipiepy.Kiwi.analyze)


def dask_setup(worker) -> None:  # distributed calls this for a preload; the wrapping is done above
    pass
