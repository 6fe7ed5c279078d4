"""A worker `--preload` for the tests: every commit the fence refuses is written down.

It wraps `dask_prep.output.fencing.check_holder` in the worker process: each `FencedOut`
appends the refused task's run token and the message to $DASK_PREP_TEST_FENCE_LOG, so a test
can see that a straggler did reach a commit and was refused (a task of a run that is over
reports to nobody).
"""

from __future__ import annotations

import os

from dask_prep.output import fencing

LOG = os.environ.get("DASK_PREP_TEST_FENCE_LOG") or None
# distributed loads a preload twice into one module (the nanny, then the worker): the original
# is kept on the wrapper, so the second load never wraps the first one's wrapper.
_check_holder = getattr(fencing.check_holder, "__wrapped__", fencing.check_holder)


def _spied_check_holder(layout) -> None:
    try:
        _check_holder(layout)
    except fencing.FencedOut as exc:
        with open(LOG, "a", encoding="utf-8") as out:
            out.write(f"{layout.token}\t{exc}\n")
        raise


_spied_check_holder.__wrapped__ = _check_holder
if LOG:
    fencing.check_holder = _spied_check_holder


def dask_setup(worker) -> None:  # distributed calls this for a preload; the wrapping is done above
    pass
