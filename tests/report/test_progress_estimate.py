"""Issue 29: the analyse bar's time left is smoothed over documents, not partitions.

A recorded sequence of progress events is replayed into the CLI's bars (`TqdmProgress`) on a
made-up clock: two workers judge documents at a steady rate each, through partitions of
uneven size, and report as the workers do (`ProgressEvents`: at most one event a second
per task, and one as each partition ends). The time left the bar shows after each event
must fall steadily, without a jump of more than 25 %.
"""

from __future__ import annotations

import io
import re

import pytest

from dask_prep.report.build import TqdmProgress
from dask_prep.stats import AnalysisStats

SIZES = [420, 60, 300, 35, 510, 150, 90, 640, 25, 380, 200, 75, 460, 110, 300, 55, 700, 45, 260, 130]
RATE = 20.0  # documents per second and worker
WORKERS = 2
EVENT_INTERVAL = 1.0  # dask_prep.pipeline.progress.PROGRESS_INTERVAL


def recorded_events() -> list[tuple[float, str, int, int]]:
    """(time, "advance" or "update", partition, documents judged) in the order the client hears them."""
    free = [0.0, 0.37]  # the second worker starts a moment later: their events interleave
    events = []
    for partition, size in enumerate(SIZES):
        worker = min(range(WORKERS), key=lambda w: free[w])
        start = free[worker]
        end = start + size / RATE
        at = start + EVENT_INTERVAL
        while at < end:
            events.append((at, "advance", partition, int((at - start) * RATE)))
            at += EVENT_INTERVAL
        events.append((end, "update", partition, size))
        free[worker] = end
    return sorted(events)


def _seconds(shown: str) -> int | None:
    """The time left in a rendered bar ("[00:12<01:05, ...]"), in seconds; None while unknown."""
    match = re.search(r"<(?:(\d+):)?(\d+):(\d+)", shown)
    if match is None:
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def time_left_after_each_event() -> list[tuple[int, int]]:
    """(documents judged, seconds left as shown) after each event of the replay."""
    now = [0.0]
    progress = TqdmProgress(disable=False)
    progress.start("analyse", len(SIZES))
    bar = progress.bars["analyse"]
    bar.fp = io.StringIO()  # drawn, but not on the test's stderr
    bar._time = lambda: now[0]  # tqdm's clock
    bar.start_t = bar.last_print_t = 0.0
    progress.set_total("analyse", sum(SIZES))
    shown = []
    for at, kind, partition, judged in recorded_events():
        now[0] = at
        if kind == "advance":
            progress.advance("analyse", partition, judged, 0)
        else:
            progress.update("analyse", AnalysisStats(partition=partition, read=judged, kept=0))
        left = _seconds(bar.format_meter(**bar.format_dict))
        if left is not None:
            shown.append((bar.n, left))
    progress.finish("analyse")
    return shown


def test_the_replay_is_a_steady_rate_through_uneven_partitions():
    events = recorded_events()
    assert max(SIZES) / min(SIZES) > 20
    assert sum(j for _, kind, _, j in events if kind == "update") == sum(SIZES)
    duration = events[-1][0]
    assert duration == pytest.approx(sum(SIZES) / (RATE * WORKERS), rel=0.1)  # both workers busy nearly to the end


def test_time_left_falls_steadily_without_jumps(capsys):
    shown = time_left_after_each_event()
    total = sum(SIZES)
    # From the first finished partition (before it the stage has run for seconds) to 90 %
    # (at the very end a second is a large share of what is left).
    first_end = min(j for _, kind, _, j in recorded_events() if kind == "update")
    window = [left for judged, left in shown if first_end <= judged <= 0.9 * total]
    assert len(window) > 50, window
    jumps = [(a, b) for a, b in zip(window, window[1:], strict=False) if abs(b - a) > 0.25 * a]
    assert jumps == [], (jumps, window)
    # Steadily: up by a few percent at most, as reports come a second apart (shown to the second).
    rises = [(a, b) for a, b in zip(window, window[1:], strict=False) if b > max(a * 1.05, a + 1)]
    assert rises == [], (rises, window)
    assert window[-1] < window[0] / 5
    # And it is right: at a steady rate, the time left is the documents left over the rate.
    judged, left = next((j, s) for j, s in shown if j >= total / 2)
    assert left == pytest.approx((total - judged) / (RATE * WORKERS), rel=0.15)
