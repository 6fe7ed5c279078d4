"""The fineweb2-ko quality rules against datatrove's LocalPipelineExecutor, 2 workers (issue 4)."""

from __future__ import annotations

from fineweb_vs_datatrove import compare as compare_with_datatrove
from fineweb_vs_datatrove import report as datatrove_report

from sections import Context

NAMES = ("fineweb",)
ORDER = 50
DEFAULT = True
ROLES: dict[str, str] = {}


def run(ctx: Context, selected: set[str]) -> None:
    ctx.bench.wait_for_quiet()
    ctx.bench.log("fineweb2-ko quality rules against datatrove's LocalPipelineExecutor, 2 workers")
    try:
        result = compare_with_datatrove(ctx.corpus, workers=2, verbose=False)
    except RuntimeError as exc:  # one side failed: record it, keep the other rows
        ctx.bench.failures["fineweb vs datatrove"] = str(exc)[-300:]
        return
    ctx.payload["fineweb_vs_datatrove"] = result
    ctx.report_blocks.append(datatrove_report(result))


def measure(ctx: Context) -> dict[str, float | None]:
    result = ctx.payload.get("fineweb_vs_datatrove")
    return {"fineweb": result["ratio"] if result else None}
