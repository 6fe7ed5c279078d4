"""Issue 32 (with issue 24's isolation): attempts of one run at one partition never disagree on disk.

A run can compute a partition twice: Dask runs it again when the worker holding its result
dies, and an attempt that hung (a Kiwi analysis past its bound, a worker the scheduler gave
up on) can finish after its retry has committed. Under load the two need not agree (healthy
documents that time out in isolation are rejected in one and kept in the other). Seen in
test_isolation[1-2]: the late attempt rewrote the decisions part, which then no longer matched
the record the client held, and the run stopped with exit 2 at publication.

Here, in one process and without timing: attempt 1 hangs inside Kiwi (an event the test
holds), attempt 2 of the same run computes and commits the partition, then attempt 1 is let
go and comes to its commit with other decisions. The files must stay attempt 2's, the stats
file must record them, and attempt 1 must return attempt 2's result.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

TOKEN = "run-of-this-test"


class _Kiwi:
    """The real Kiwi, one text at a time; `hold` (an Event) stops every call until set, and with
    `fail` every call fails (its documents rejected, as by an analysis that timed out)."""

    def __init__(self, kiwi, *, hold: threading.Event | None = None, fail: bool = False) -> None:
        self.kiwi = kiwi
        self.hold = hold
        self.fail = fail
        self.calls = 0
        self.num_workers = 1
        self.waiting = threading.Event()

    def tokenize(self, text, **kwargs):
        self.calls += 1
        if self.hold is not None:
            self.waiting.set()
            assert self.hold.wait(120), "the test never let the hung attempt go"
        if self.fail:
            raise RuntimeError("no answer in time")
        return self.kiwi.tokenize(text, **kwargs)


@pytest.fixture(scope="module")
def kiwi():
    from dask_prep.analysis.kiwi import get_kiwi

    return get_kiwi()


@pytest.fixture()
def partition(shard0, tmp_path):
    """(spec, config, layout of a run holding tmp_path/out)."""
    from dask_prep.config import preset
    from dask_prep.io.reading import plan_partitions, resolve_inputs
    from dask_prep.output.layout import LOCK_FILE, Layout

    config = preset("seed-v2")
    config.input.dedup = False
    (file,) = resolve_inputs([str(shard0)])
    (spec,) = plan_partitions([file], [120], 120)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"token": TOKEN}), encoding="utf-8")  # the run holds the directory
    return spec, config, Layout(str(out), TOKEN)


def _decisions(layout) -> list[tuple]:
    import pyarrow.parquet as pq

    table = pq.read_table(layout.part("decisions", 0), columns=["line", "rejected_by"])
    return sorted(zip(table["line"].to_pylist(), table["rejected_by"].to_pylist(), strict=True))


def test_a_hung_attempt_that_finishes_after_its_retry_committed_changes_nothing(kiwi, partition):
    from dask_prep.output.fencing import check_part, read_stats
    from dask_prep.pipeline.partition import analyse_partition
    from dask_prep.stats import AnalysisStats

    spec, config, layout = partition
    hold = threading.Event()
    hung = _Kiwi(kiwi, hold=hold, fail=True)  # every analysis it finishes "timed out"
    late: dict = {}

    def first_attempt() -> None:
        try:
            late["stats"] = analyse_partition(spec, config, layout, kiwi=hung)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            late["error"] = exc

    thread = threading.Thread(target=first_attempt, daemon=True)
    thread.start()
    assert hung.waiting.wait(120), "the first attempt never reached Kiwi"
    retry = analyse_partition(spec, config, layout, kiwi=_Kiwi(kiwi))  # what the client receives
    committed = _decisions(layout)
    assert retry.kept > 0 and "analysis_error" not in retry.rejected

    hold.set()  # the hung attempt finishes now, with other decisions, and comes to its commit
    thread.join(120)
    assert not thread.is_alive()
    assert "error" not in late, late.get("error")
    assert hung.calls > 0

    # The files are the committed attempt's, and both records (the client's, the stats file's) say so.
    assert _decisions(layout) == committed
    on_disk = AnalysisStats.from_json(read_stats(layout, "analyse", 0))
    for kind in ("candidates", "decisions"):
        check_part(layout.part(kind, 0), retry.parts[kind])
        assert on_disk.parts[kind] == retry.parts[kind]
    # The late attempt returns the run's result, not its own.
    assert late["stats"].parts == retry.parts
    assert (late["stats"].kept, late["stats"].rejected) == (retry.kept, retry.rejected)
    staging = Path(layout.work) / "staging"
    assert not staging.exists() or not any(staging.iterdir())  # the late attempt's staged parts are gone


def test_an_attempt_after_the_commit_returns_it_without_analysing(kiwi, partition):
    """Dask computes a partition again when the worker holding its result died: nothing is redone."""
    from dask_prep.pipeline.partition import analyse_partition

    spec, config, layout = partition
    first = analyse_partition(spec, config, layout, kiwi=_Kiwi(kiwi))
    before = _decisions(layout)
    again = _Kiwi(kiwi, fail=True)
    second = analyse_partition(spec, config, layout, kiwi=again)
    assert again.calls == 0
    assert second.parts == first.parts and second.rejected == first.rejected
    assert _decisions(layout) == before


def test_a_second_tokenize_attempt_returns_the_committed_one(kiwi, partition, tokenizer_dir):
    """Stage 2 alike: an attempt after the commit neither tokenizes nor rewrites the examples part."""
    from dask_prep.coref.tokenizer import PortableTokenizer
    from dask_prep.output.fencing import check_part
    from dask_prep.pipeline.partition import analyse_partition, tokenize_partition

    spec, config, layout = partition
    config.tokenize.model = str(tokenizer_dir)
    analyse_partition(spec, config, layout, kiwi=_Kiwi(kiwi))
    first = tokenize_partition(0, config, layout, {}, tokenizer=PortableTokenizer.load(str(tokenizer_dir)))
    assert first.examples > 0
    second = tokenize_partition(0, config, layout, {}, tokenizer=object())  # would fail if it tokenized
    assert second.parts == first.parts and second.examples == first.examples
    check_part(layout.part("examples", 0), first.parts["examples"])
