"""Cluster layouts on the 1x corpus: workers x threads per worker x Kiwi threads @ partition size."""

from __future__ import annotations

import argparse

from report import table

from dask_prep.config import preset
from dask_prep.pipeline.cluster import ClusterOptions
from sections import Context

NAMES = ("layouts",)
ORDER = 60
DEFAULT = False
ROLES: dict[str, str] = {}
DEFAULT_LAYOUTS = ["1x1x2@2000", "1x1x2@500", "2x1x1@2000", "2x1x1@500", "2x1x2@2000", "1x2x1@2000"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layouts", default="", help="e.g. 2x1x1@2000,2x1x1@500,1x1x2@2000 (adds 'layouts')")


def run(ctx: Context, selected: set[str]) -> None:
    default = default_layout()
    for spec in [s for s in (ctx.args.layouts or "").split(",") if s] or DEFAULT_LAYOUTS:
        layout = parse_layout(spec)
        if layout == default and ctx.names["pipeline"] in ctx.bench.rows:
            row = ctx.bench.rows[ctx.names["pipeline"]]
        else:
            row = ctx.bench.attempt(ctx.bench.pipeline, f"layout {spec}", ctx.shards, layout_options(layout))
            if row is None:
                continue
        row.details["layout"] = spec
        row.details["workers"] = layout[0] * layout[1]  # task slots
        ctx.layout_rows.append(row)
    ctx.payload["layouts"] = [r.name for r in ctx.layout_rows]


def report(ctx: Context, limit: float | None) -> None:
    """The layouts' own table, after the diagnostics."""
    lines = ["Layouts (workers x threads per worker x Kiwi threads @ partition size):"]
    lines.append(table(ctx.layout_rows, limit, ctx.row("baseline")))
    lines += [f"{name:<44}FAILED" for name in ctx.bench.failures if name.startswith("layout ")]
    ctx.report_blocks.append("\n".join(lines))


def parse_layout(spec: str) -> tuple[int, int, int, int]:
    """'2x1x1@2000' -> (workers, threads per worker, Kiwi threads, partition size)."""
    shape, _, size = spec.partition("@")
    workers, threads, kiwi = (int(x) for x in shape.split("x"))
    return workers, threads, kiwi, int(size or preset("seed-v2").input.partition_size)


def layout_options(layout: tuple[int, int, int, int]) -> list[str]:
    w, t, k, p = layout
    return ["--n-workers", str(w), "--threads-per-worker", str(t), "--kiwi-threads", str(k), "--partition-size", str(p)]


def default_layout() -> tuple[int, int, int, int]:
    opts = ClusterOptions()
    workers, kiwi_threads = opts.layout()
    return workers, opts.threads_per_worker, kiwi_threads, preset("seed-v2").input.partition_size
