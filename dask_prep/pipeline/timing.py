"""Seconds per stage, for the report's `seconds` (the run's and each partition's)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    """Times stages into `seconds` (a dict it fills, in the order the stages end)."""

    def __init__(self, seconds: dict[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = {} if seconds is None else seconds
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """`seconds[name]` = the time the block took (not set if it raised)."""
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start

    def elapsed(self) -> float:
        """Seconds since this stopwatch was made."""
        return time.perf_counter() - self.started
