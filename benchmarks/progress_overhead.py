"""What the analyse stage's progress events cost the workers: stage 1 with them and without.

    python benchmarks/progress_overhead.py --corpus ../shared/data/kowiki-hplt --shards 2

One LocalCluster as `dask-prep run` starts it (its default layout); stage 1 (`Pipeline.analyse`,
dedup off) on the first N shards, alternating `on` (a Progress that follows the partitions:
each task sends a `log_event` per second and one per finished partition, which the client
receives through `subscribe_topic`) and `off` (no topic: the tasks send nothing), in the
order on off off on on off off on so that the host's drift falls on both. Per run: the
stage's wall time, the tasks' own filter time summed over partitions (where the events are
sent from), the worker processes' CPU time (steadier than wall time on a shared host) and
the number of events the client received. Then, in a worker, the cost of
one call of the per-document progress hook (a clock read; no event) and of one event sent
from a task thread: what a task pays, independent of the host's noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from dask_prep.config import preset
from dask_prep.io.reading import resolve_inputs
from dask_prep.pipeline.cluster import ClusterOptions, start_client, stop_client
from dask_prep.pipeline.compute import compute_stage
from dask_prep.pipeline.graph import Pipeline
from dask_prep.pipeline.progress import PROGRESS_INTERVAL, Progress, ProgressEvents


class CountingProgress(Progress):
    def __init__(self) -> None:
        self.events = 0

    def advance(self, stage: str, partition: int, judged: int, kept: int) -> None:
        self.events += 1


def hook_costs(dask_worker: Any, calls: int = 1_000_000, events: int = 10_000) -> tuple[float, float]:
    """(µs per throttled hook call that sends nothing, µs per event sent), in a task-like thread."""
    costs: list[float] = []

    def measure() -> None:
        hook = ProgressEvents(f"bench-hook-{uuid.uuid4().hex}", worker=dask_worker)
        hook.next_event = time.monotonic() + 3600  # throttled: the per-document path
        started = time.perf_counter()
        for i in range(calls):
            hook(i, 0)
        costs.append((time.perf_counter() - started) / calls * 1e6)
        started = time.perf_counter()
        for i in range(events):
            hook.send(i, 0)
        costs.append((time.perf_counter() - started) / events * 1e6)

    thread = threading.Thread(target=measure)  # log_event from a thread that is not the event loop's
    thread.start()
    thread.join()
    return costs[0], costs[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--shards", type=int, default=2, help="first N files of the corpus")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of on off off on")
    args = parser.parse_args(argv)

    inputs = [f.path for f in resolve_inputs([args.corpus])[: args.shards]]
    config = preset("seed-v2")
    config.input.dedup = False
    client = start_client(ClusterOptions())
    results: dict[str, list[tuple[float, float, float]]] = {"on": [], "off": []}
    try:
        print(f"workers: {len(client.nthreads())}, inputs: {len(inputs)} files", flush=True)
        for address, (per_call, per_event) in client.run(hook_costs).items():
            print(
                f"{address}: hook {per_call:.3f} µs per document, {per_event:.1f} µs per event "
                f"(one per {PROGRESS_INTERVAL:g} s per task)",
                flush=True,
            )
        for name in ["on", "off", "off", "on"] * args.rounds:
            with tempfile.TemporaryDirectory(prefix="progress-overhead-") as out:
                pipeline = Pipeline(inputs, config, out)
                specs = pipeline.partitions()
                progress = CountingProgress() if name == "on" else Progress()
                topic = f"bench-progress-{uuid.uuid4().hex}" if name == "on" else None
                bag, item = pipeline.analyse(None, progress_topic=topic)
                cpu_before = client.run(time.process_time)
                started = time.perf_counter()
                stats, _ = compute_stage(
                    "analyse", bag, item, progress, topic=topic, documents=sum(s.records for s in specs)
                )
                wall = time.perf_counter() - started
                cpu_after = client.run(time.process_time)
            cpu = sum(cpu_after[w] - cpu_before[w] for w in cpu_after)
            task_filter = sum(s["seconds"]["filter"] for s in stats)
            events = progress.events if name == "on" else 0
            results[name].append((wall, task_filter, cpu))
            print(
                f"{name:3s} {sum(s['read'] for s in stats):,} docs in {len(stats)} partitions: "
                f"wall {wall:6.2f} s, tasks' filter time {task_filter:6.2f} s, workers' CPU {cpu:6.2f} s, "
                f"events {events}",
                flush=True,
            )
    finally:
        stop_client(client)
    medians = {name: [statistics.median(run[i] for run in runs) for i in range(3)] for name, runs in results.items()}
    for name, (wall, task_filter, cpu) in medians.items():
        print(f"median {name:3s}: wall {wall:6.2f} s, filter {task_filter:6.2f} s, workers' CPU {cpu:6.2f} s")
    ratios = [on / off for on, off in zip(medians["on"], medians["off"], strict=True)]
    print(f"on / off: wall {ratios[0]:.3f}, tasks' filter time {ratios[1]:.3f}, workers' CPU {ratios[2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
