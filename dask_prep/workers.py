"""The distributed worker or client this code runs under, if any.

distributed is imported only when asked, so the plain-Python stage functions (a unit
test, `dask.compute` without a cluster) work where it is not installed.
"""

from __future__ import annotations

from typing import Any


def current_worker() -> Any | None:
    """The `distributed.Worker` running this task, or None outside a distributed worker."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def current_client() -> Any | None:
    """The active `distributed.Client`, or None (plain `dask.compute` on the default scheduler)."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None
