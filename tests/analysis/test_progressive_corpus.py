"""Acceptance (issue 21): on the whole shared corpus, progressive analysis (the default) and
`--full-analysis` write the same dataset, row for row, and keep the same documents.

Both runs use the session's real LocalCluster (worker processes, real Kiwi), the shared
tokenizer and every shard of ../shared/data/kowiki-hplt.
"""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
import pytest
from support.data import CORPUS, needs_shared, seed_config_with

from dask_prep.pipeline.decisions import ANALYSIS_MODE_KEY


@pytest.fixture(scope="module")
def both_modes(pipeline_runner, tokenizer_dir, tmp_path_factory):
    runs = {}
    for progressive in (True, False):
        config = seed_config_with(tokenizer_dir, analysis__progressive=progressive)
        out = tmp_path_factory.mktemp("progressive" if progressive else "full")
        runs["progressive" if progressive else "full"] = pipeline_runner([CORPUS], config, out)
    return runs


@pytest.mark.slow  # the whole shared corpus
@needs_shared
def test_same_dataset_and_kept_documents_on_the_whole_corpus(both_modes):
    progressive, full = both_modes["progressive"], both_modes["full"]
    assert progressive.report["analysis"]["mode"] == "progressive"
    assert full.report["analysis"]["mode"] == "full"
    rows = progressive.rows()
    assert len(rows) > 1000
    assert rows == full.rows()  # row for row, every column
    assert progressive.kept_ids() == full.kept_ids() and len(progressive.kept_ids()) > 100
    assert progressive.candidate_rows() == full.candidate_rows()
    for key in ("documents", "examples", "entities"):
        assert progressive.report[key] == full.report[key], key


@pytest.mark.slow  # the whole shared corpus
@needs_shared
def test_decisions_differ_only_in_which_rule_a_pronoun_document_is_counted_under(both_modes):
    progressive, full = both_modes["progressive"], both_modes["full"]
    p_decisions, f_decisions = progressive.decisions(), full.decisions()
    assert p_decisions.keys() == f_decisions.keys()
    changed = Counter((f_decisions[d], p_decisions[d]) for d in f_decisions if f_decisions[d] != p_decisions[d])
    assert set(changed) <= {("nnp_ratio", "pronoun")}, changed
    for run, mode in ((progressive, b"progressive"), (full, b"full")):
        table = pq.read_table(run.output_dir / "decisions")
        assert table.schema.metadata[ANALYSIS_MODE_KEY] == mode


@pytest.mark.slow  # the whole shared corpus
@needs_shared
def test_progressive_analyses_less_and_says_what_it_did_not_measure(both_modes):
    p, f = both_modes["progressive"].report, both_modes["full"].report
    pa, fa = p["analysis"], f["analysis"]
    assert pa["documents"] == fa["documents"] and pa["chars"] == fa["chars"] == fa["kiwi_chars"]
    assert fa["stopped_early"] == 0 and pa["stopped_early"] > pa["documents"] // 2
    assert pa["kiwi_chars"] < pa["chars"] / 2
    nnp, pronoun = p["measured_values"]["nnp_ratio"], p["measured_values"]["pronoun"]
    assert nnp["not_measured_stopped_early"] == pa["stopped_early"] == pronoun["measured_on_prefix"]
    assert f["measured_values"]["nnp_ratio"]["not_measured_stopped_early"] == 0
    decisions = pq.read_table(both_modes["progressive"].output_dir / "decisions").to_pylist()
    prefix = [r for r in decisions if r["analysis"] == "prefix"]
    assert len(prefix) == pa["stopped_early"]
    assert all(r["nnp_ratio"] is None and r["rejected_by"] == "pronoun" and r["pronoun"] >= 1 for r in prefix)
    assert sum(r["kiwi_chars"] or 0 for r in decisions) == pa["kiwi_chars"]


@pytest.mark.slow  # the whole shared corpus
@needs_shared
def test_report_html_says_which_mode_ran(both_modes):
    progressive = (both_modes["progressive"].output_dir / "report.html").read_text(encoding="utf-8")
    full = (both_modes["full"].output_dir / "report.html").read_text(encoding="utf-8")
    assert "Analysis: <b>progressive</b>" in progressive and "nnp_ratio: " in progressive
    assert "not measured" in progressive and "measured on a prefix" in progressive
    assert "Analysis: <b>full</b>" in full and "measured on a prefix" not in full
