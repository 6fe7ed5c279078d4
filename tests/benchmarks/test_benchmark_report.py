"""The benchmark's paired ratios and the Kiwi-alone scaling line, on made-up rows.

No timing is measured here (benchmarks/ does that); this checks that each ratio pairs the
rows it names and that the scaling ceiling is reported beside, not as, a target.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import measure  # noqa: E402  (benchmarks/ is scripts, not a package)
import report  # noqa: E402
import run  # noqa: E402
import sections  # noqa: E402


def row(name: str, kind: str, wall: float) -> measure.Row:
    return measure.Row(name=name, kind=kind, wall=wall, docs=1_000, analysed_chars=500_000)


def test_kiwi_alone_ratio_pairs_two_processes_with_one():
    rows = {
        r.name: r
        for r in (
            row("one", "pipeline", 120.0),
            row("two", "pipeline", 75.0),
            row("kiwi 1", "kiwi_alone", 100.0),
            row("kiwi 2", "kiwi_alone", 52.0),
            row("kiwi 1 #2", "kiwi_alone", 90.0),
            row("kiwi 2 #2", "kiwi_alone", 50.0),
        )
    }
    paired = {"scaling": [("two", "one")], "kiwi_scaling": [("kiwi 2", "kiwi 1"), ("kiwi 2 #2", "kiwi 1 #2")]}
    ratios = report.paired_ratios(rows, paired)
    assert ratios["scaling"] == pytest.approx([120.0 / 75.0])
    assert ratios["kiwi_scaling"] == pytest.approx([100.0 / 52.0, 90.0 / 50.0])
    line = report.kiwi_scaling_text(ratios)
    assert line.split()[0] == "info"  # reported, never a PASS or FAIL
    assert f"{(100.0 / 52.0 + 90.0 / 50.0) / 2:.3f}" in line  # the median of two
    names = {key: "" for key in ("pipeline", "baseline", "pipeline_nodedup", "pipeline_scaled")}
    ctx = sections.Context(argparse.Namespace(scale=4), bench=None, names=names, chosen=rows, ratios=ratios)
    results = report.evaluate(report.load_targets(), run.measure_all(ctx), 4)
    assert [t["target"] for t in results if t["result"] != "SKIP"] == ["scaling"]


def test_no_kiwi_alone_rows_print_no_line():
    assert report.kiwi_scaling_text({"scaling": [1.6]}) == ""
    assert report.kiwi_scaling_text({}) == ""


def test_kiwi_alone_rows_are_not_compared_with_the_pool():
    base = row("Pool baseline 1x", "baseline", 80.0)
    text = report.table([row("Kiwi alone: 1 process x 1 Kiwi thread", "kiwi_alone", 100.0), base], None, base)
    kiwi_line = text.splitlines()[2]
    assert kiwi_line.split()[-2] == "-"  # the x Pool column
