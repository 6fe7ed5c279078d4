"""The benchmark driver's parts: sections found by discovery, targets read from targets.toml.

No workload runs here (benchmarks/ measures); this checks that the command line keeps its
section names, that every target is measured by some section, and how a target is judged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import report  # noqa: E402  (benchmarks/ is scripts, not a package)
import run  # noqa: E402
import sections  # noqa: E402


def test_the_command_line_keeps_its_sections_and_defaults():
    assert set(run.SECTIONS) == {"limit", "fixed", "baseline", "pipeline", "scaling", "scale", "fineweb", "layouts"}
    assert len(run.SECTIONS) == len(set(run.SECTIONS)), "two section modules answer to the same name"
    assert set(run.DEFAULT_SECTIONS) == set(run.SECTIONS) - {"layouts"}
    orders = [module.ORDER for module in run.SECTION_MODULES]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_an_unknown_section_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--corpus", ".", "--model", ".", "--only", "limit,nosuch"])
    assert exit_info.value.code == 2
    assert "unknown section(s) ['nosuch']" in capsys.readouterr().err


def test_every_target_is_measured_by_a_section_and_nothing_else_is():
    ctx = sections.Context(argparse.Namespace(scale=4), bench=None)
    measured = run.measure_all(ctx)
    assert set(measured) == set(report.load_targets())
    assert all(value is None for value in measured.values())  # nothing ran: every target SKIPs


def test_targets_are_judged_by_their_bound_and_direction():
    targets = report.load_targets()
    assert targets["memory"] == {
        "label": "peak RSS at {scale}x / at 1x (pipeline, no dedup)",
        "bound": 1.15,
        "at_least": False,
    }
    results = {t["target"]: t for t in report.evaluate(targets, {"filter": 0.9, "memory": 1.2, "scaling": 1.69}, 4)}
    assert results["filter"]["result"] == "PASS"  # >= 0.9, the bound itself passes
    assert results["memory"]["result"] == "FAIL" and results["memory"]["sign"] == "<="
    assert results["memory"]["label"] == "peak RSS at 4x / at 1x (pipeline, no dedup)"
    assert results["scaling"]["result"] == "FAIL"
    assert results["fineweb"]["result"] == "SKIP" and results["fineweb"]["value"] is None
    with pytest.raises(ValueError, match="not in targets.toml"):
        report.evaluate(targets, {"no_such_target": 1.0}, 4)
