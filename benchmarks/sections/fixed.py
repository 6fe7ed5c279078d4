"""Fixed costs: both designs on a few documents (start-up, imports, model loads, shutdown)."""

from __future__ import annotations

from sections import Context

NAMES = ("fixed",)
ORDER = 30
DEFAULT = True
FIXED_DOCS = 40  # a run this small measures start-up, imports, model loads and shutdown
ROLES = {
    "baseline_fixed": f"Pool baseline, {FIXED_DOCS} docs (fixed costs)",
    "pipeline_fixed": f"dask-prep, {FIXED_DOCS} docs (fixed costs)",
}


def run(ctx: Context, selected: set[str]) -> None:
    tiny = ["--max-samples", str(FIXED_DOCS)]
    ctx.bench.attempt(ctx.bench.baseline, ctx.names["baseline_fixed"], ctx.shards, tiny)
    ctx.bench.attempt(ctx.bench.pipeline, ctx.names["pipeline_fixed"], ctx.shards, tiny)
