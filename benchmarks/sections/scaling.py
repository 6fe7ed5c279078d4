"""The pipeline with 1 and with 2 workers of one core each, beside Kiwi alone in 1 and 2 processes.

Workers of one core each (one single-threaded Kiwi), so that 2 workers use 2 cores and 1
worker uses 1, whatever the default layout. Beside each pair, Kiwi alone in 1 and in 2
single-threaded processes on the limit's texts: how far two cores of this host scale Kiwi
itself (the pipeline's ceiling, reported as `info`, not a target).
"""

from __future__ import annotations

from report import counterbalanced, median_of

from sections import Context

NAMES = ("scaling",)
ORDER = 20
DEFAULT = True
ROLES = {
    "one_worker": "dask-prep 1x, 1 worker x 1 Kiwi thread",
    "two_workers": "dask-prep 1x, 2 workers x 1 Kiwi thread",
}
ONE_CORE = ["--threads-per-worker", "1", "--kiwi-threads", "1"]


def run(ctx: Context, selected: set[str]) -> None:
    bench = ctx.bench
    for k in range(ctx.args.repeat):
        pair = {role: ctx.repeated(role, k) for role in ("one_worker", "two_workers")}
        kiwi_rows: dict[int, str] = {}

        def run_workers(k: int = k, pair: dict[str, str] = pair) -> None:
            for role, workers in counterbalanced([("one_worker", "1"), ("two_workers", "2")], k):
                bench.attempt(bench.pipeline, pair[role], ctx.shards, ["--n-workers", workers, *ONE_CORE])

        def run_kiwi_alone(k: int = k, kiwi_rows: dict[int, str] = kiwi_rows) -> None:
            for n in counterbalanced([1, 2], k):
                row = bench.attempt(bench.limit, ctx.texts_path, "processes", n, ctx.kiwi_set.read, k, "kiwi_alone")
                if row is not None:
                    kiwi_rows[n] = row.name

        for step in counterbalanced([run_workers, run_kiwi_alone], k):
            step()
        ctx.paired["scaling"].append((pair["two_workers"], pair["one_worker"]))
        if len(kiwi_rows) == 2:
            ctx.paired["kiwi_scaling"].append((kiwi_rows[2], kiwi_rows[1]))


def measure(ctx: Context) -> dict[str, float | None]:
    return {"scaling": median_of(ctx.ratios, "scaling")}
