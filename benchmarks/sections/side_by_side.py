"""The Kiwi limit, `dask-prep run` and the Pool baseline, side by side in counterbalanced repeats.

Each compared set runs --repeat times, and each target is the median of the ratios of its
repeats: a ratio compares runs made minutes apart, next to each other, while the host's speed
drifts by 10-25 % over a benchmark, often steadily. The order is counterbalanced (limit,
pipeline, baseline; then baseline, pipeline, limit; ...) so that a steady drift does not
favour one side.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from measure import Row
from report import counterbalanced, median_of

from sections import Context

NAMES = ("limit", "pipeline", "baseline")
ORDER = 10
DEFAULT = True
ROLES = {"baseline": "Pool baseline 1x", "pipeline": "dask-prep 1x (default)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit-modes", default="processes,threads", help="processes,threads")


def run(ctx: Context, selected: set[str]) -> None:
    bench, args = ctx.bench, ctx.args
    modes = [m for m in args.limit_modes.split(",") if m] if "limit" in selected else []
    for k in range(args.repeat):
        limits: list[str] = []
        pipe = ctx.repeated("pipeline", k) if "pipeline" in selected else None
        base = ctx.repeated("baseline", k) if "baseline" in selected else None

        def run_limits(k: int = k, limits: list[str] = limits) -> None:
            for mode in counterbalanced(modes, k):
                row = bench.attempt(bench.limit, ctx.texts_path, mode, ctx.cores, ctx.kiwi_set.read, k)
                if row is not None:
                    limits.append(row.name)

        def run_pipeline(k: int = k, pipe: str | None = pipe) -> None:
            if pipe and bench.attempt(bench.pipeline, pipe, ctx.shards) and k == 0:
                check_kiwi_set(bench.rows[pipe], ctx.kiwi_set)

        def run_baseline(base: str | None = base) -> None:
            if base:
                bench.attempt(bench.baseline, base, ctx.shards)

        for step in counterbalanced([run_limits, run_pipeline, run_baseline], k):
            step()
        if pipe:
            ctx.paired["filter"].append((pipe, limits))
            ctx.paired["end_to_end"].append((pipe, base))


def measure(ctx: Context) -> dict[str, float | None]:
    pipe, base = ctx.row("pipeline"), ctx.row("baseline")
    size = None
    if pipe and base and pipe.bytes_per_example and base.bytes_per_example:
        size = pipe.bytes_per_example / base.bytes_per_example
    return {"filter": median_of(ctx.ratios, "filter"), "end_to_end": median_of(ctx.ratios, "end_to_end"), "size": size}


def check_kiwi_set(row: Row, kiwi_set: Any) -> None:
    """The limit ran on exactly what the pipeline analysed: same documents, same chars."""
    docs, chars = row.details["analysed_docs"], row.analysed_chars
    same = docs == len(kiwi_set.texts) and chars == kiwi_set.chars
    row.details["kiwi_set_matches_pipeline"] = same
    if not same:
        print(
            f"WARNING: the pipeline analysed {docs:,} docs / {chars:,} chars, the limit used "
            f"{len(kiwi_set.texts):,} / {kiwi_set.chars:,}",
            file=sys.stderr,
        )
