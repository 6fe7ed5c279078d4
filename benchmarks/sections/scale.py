"""Memory: both designs on the corpus repeated --scale times (new ids), against 1x.

The copies have new ids but the same texts: with dedup on, both designs would reject 3 of
every 4 as duplicates. The memory runs are without dedup, so both do N times the work (the
1x corpus has no duplicates: dedup on or off, same work).
"""

from __future__ import annotations

from pathlib import Path

from common import write_scaled_corpus

from sections import Context

NAMES = ("scale",)
ORDER = 40
DEFAULT = True
ROLES = {
    "baseline_scaled": "Pool baseline {scale}x",
    "pipeline_nodedup": "dask-prep 1x, no dedup",
    "pipeline_scaled": "dask-prep {scale}x, no dedup",
}


def run(ctx: Context, selected: set[str]) -> None:
    bench, scale = ctx.bench, ctx.args.scale
    scaled = ctx.work / f"corpus-{scale}x"
    bench.log(f"writing the {scale}x corpus to {scaled}")
    write_scaled_corpus_from(ctx.shards, str(scaled), scale)
    bench.attempt(bench.baseline, ctx.names["baseline_scaled"], [str(scaled)], ["--no-dedup"])
    bench.attempt(bench.pipeline, ctx.names["pipeline_nodedup"], ctx.shards, ["--no-dedup"])
    bench.attempt(bench.pipeline, ctx.names["pipeline_scaled"], [str(scaled)], ["--no-dedup"])


def measure(ctx: Context) -> dict[str, float | None]:
    small, big = ctx.row("pipeline_nodedup"), ctx.row("pipeline_scaled")
    return {"memory": big.peak_rss / small.peak_rss if small and big else None}


def growth(ctx: Context) -> dict[str, tuple]:
    """{label: (1x row, scaled row)} of each design, for the diagnostics."""
    out = {}
    for small, big in (("baseline", "baseline_scaled"), ("pipeline_nodedup", "pipeline_scaled")):
        if ctx.row(small) and ctx.row(big):
            out[f"{small} 1x -> {ctx.args.scale}x"] = (ctx.row(small), ctx.row(big))
    return out


def write_scaled_corpus_from(shards: list[str], dest: str, copies: int) -> None:
    """The scaled corpus from exactly the shards in use (all, or --max-shards)."""
    source = Path(dest + "-src")
    source.mkdir(parents=True, exist_ok=True)
    for shard in shards:
        link = source / Path(shard).name
        if not link.exists():
            link.symlink_to(shard)
    write_scaled_corpus(str(source), dest, copies)
