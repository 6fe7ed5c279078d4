"""report.html and its plot data, on small output directories written here: no cluster.

The parts use the pipeline's real schemas (decisions, candidates, output examples), so a
schema change that breaks the report fails here first.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dask_prep.config import TokenizeConfig, preset
from dask_prep.coref.entities import Candidate
from dask_prep.coref.tokenization import output_schema
from dask_prep.output.layout import Layout
from dask_prep.pipeline.decisions import decisions_schema
from dask_prep.pipeline.partition import CANDIDATE_SCHEMA
from dask_prep.report import data as report_data
from dask_prep.report.data import (
    DistanceHistogram,
    LengthHistogram,
    candidate_target_counts,
    length_histogram,
    plot_data,
)
from dask_prep.report.html import example_html, write_html_report
from dask_prep.report.plots import figure_png, report_figures


def _write(table: pa.Table, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)


def _decisions(config, rows: list[tuple[str | None, int | None]]) -> pa.Table:
    schema = decisions_schema(config)
    columns = {
        "doc_id": [f"d{i}" for i in range(len(rows))],
        "source": ["a.jsonl"] * len(rows),
        "line": list(range(1, len(rows) + 1)),
        "rejected_by": [r for r, _ in rows],
        "chars": [c for _, c in rows],
    }
    for name in schema.names[5:]:
        columns[name] = [None] * len(rows)
    return pa.Table.from_pydict(columns, schema=schema)


def _candidates(targets_per_doc: list[list[str]]) -> pa.Table:
    rows = [
        {
            "doc_id": f"d{i}",
            "text": "본문",
            "candidates": [
                {"target": t, "antecedent_start": 0, "antecedent_end": 2, "start": 20, "end": 22, "key": 1}
                for t in targets
            ],
        }
        for i, targets in enumerate(targets_per_doc)
    ]
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def _examples(targets: list[str], distances: list[int]) -> pa.Table:
    schema = output_schema(with_token_type_ids=True)
    rows = [
        {
            "doc_id": f"d{i}",
            "input_ids": [2, 4, 3],
            "attention_mask": [1, 1, 1],
            "token_type_ids": [0, 0, 0],
            "labels": [-100, 5, -100],
            "target": t,
            "target_ids": [5],
            "antecedent_pos": 0,
            "coref_pos": d,
            "distance": d,
            "mask_start": 1,
            "mask_end": 2,
            "antecedent_start": 1,
            "antecedent_end": 2,
        }
        for i, (t, d) in enumerate(zip(targets, distances, strict=True))
    ]
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture
def run_dir(tmp_path):
    """An output directory of two partitions, and its report."""
    config = preset("seed-v2")
    layout = Layout(str(tmp_path))
    _write(_decisions(config, [(None, 1000), ("length", 50), ("length", 5000)]), layout.part("decisions", 0))
    _write(_decisions(config, [("not_json", None), ("pronoun", 1200), (None, 900)]), layout.part("decisions", 1))
    _write(_candidates([["서울", "부산"], ["서울"]]), layout.part("candidates", 0))
    _write(_candidates([["서울", "서울"], []]), layout.part("candidates", 1))
    _write(_examples(["서울", "부산"], [15, 1999]), layout.part("examples", 0))
    _write(_examples(["서울"], [400]), layout.part("examples", 1))
    report = {
        "inputs": ["a.jsonl"],
        "documents": {"read": 6, "malformed": 1, "rejected": 3, "kept": 2},
        "malformed": {"not_json": 1},
        "rejected": {"length": 2, "pronoun": 1},
        "entities": {"qualifying_in_kept_documents": 3, "distinct_targets": 2, "capped_targets": 1},
        "examples": {"before_cap": 5, "after_cap": 3, "dropped": {}, "written": 3},
        "throughput": {"analysed_documents": 3, "docs_per_second": 12.5},
        "seconds": {"analyse": 1.5, "total": 2.0},
        "worker_seconds": {"filter": 1.2},
        "partition_log": [
            {"analysed_by": "tcp://127.0.0.1:1", "tokenized_by": "tcp://127.0.0.1:2"},
            {"analysed_by": "tcp://127.0.0.1:2", "tokenized_by": "tcp://127.0.0.1:2"},
        ],
        "config": {**config.to_dict(), "entities": {**config.to_dict()["entities"], "max_entity_freq": 2}},
        "dataset": str(tmp_path / "entity_coref_v2_2048"),
    }
    return tmp_path, report


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_plot_data_aggregates_parts(run_dir):
    folder, report = run_dir
    data = plot_data(report, str(folder))
    assert data.lengths.kept.sum() == 2 and data.lengths.rejected.sum() == 3  # the malformed line is left out
    assert sorted(data.before_cap) == [1, 4]  # 부산 once, 서울 four times
    assert sorted(data.after_cap) == [1, 2]
    assert data.cap == 2 and data.length_rule == (800, 2500)
    assert data.distances.counts.sum() == 3 and data.distances.width == 40


def test_counts_merge_over_many_batches(tmp_path, monkeypatch):
    # Tiny batches force many merges of the per-batch counts.
    monkeypatch.setattr(report_data, "BATCH_ROWS", 2)
    targets = [[f"e{i % 7}" for i in range(j, j + 3)] for j in range(40)]
    for part in range(3):
        _write(_candidates(targets), Layout(str(tmp_path)).part("candidates", part))
    counts = candidate_target_counts(str(tmp_path / "_work" / "candidates"))
    expected = np.bincount([int(t[1:]) for doc in targets for t in doc]) * 3
    assert sorted(counts) == sorted(expected)


def test_histograms():
    lengths = LengthHistogram()
    lengths.add([0, 1, 9, 10, 10**9], [True, False, False, True, True])
    assert lengths.kept.sum() == 3 and lengths.rejected.sum() == 2
    assert lengths.kept[-1] == 1  # beyond the last edge: counted in the last bin
    distances = DistanceHistogram(width=10)
    distances.add([0, 9, 10, 35])
    distances.add([])
    assert list(distances.counts) == [2, 1, 0, 1]
    assert list(distances.edges) == [0, 10, 20, 30, 40]


def test_html_report_is_self_contained(run_dir):
    folder, report = run_dir
    path = write_html_report(report, str(folder))
    assert path == str(folder / "report.html")
    page = (folder / "report.html").read_text(encoding="utf-8")
    images = _pngs(page)
    assert len(images) == 4
    for image in images:
        Image.open(io.BytesIO(image)).verify()
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for text in ("documents read", "pronoun", "examples written", "docs per second", "max_entity_freq: 2"):
        assert text in page
    assert "2 analysed" not in page and "1 analysed, 0 tokenized" in page


def test_html_report_without_decisions(run_dir):
    folder, report = run_dir
    shutil.rmtree(folder / "decisions")
    assert length_histogram(str(folder / "decisions")) is None
    page = (folder / write_html_report(report, str(folder))).read_text(encoding="utf-8")
    assert len(_pngs(page)) == 3
    assert "--no-decisions" in page


def test_empty_run_still_has_a_report(tmp_path):
    report = {
        "documents": {"read": 0, "malformed": 0, "rejected": 0, "kept": 0},
        "examples": {"before_cap": 0, "after_cap": 0, "dropped": {}, "written": 0},
        "config": preset("seed-v2").to_dict(),
    }
    figures = report_figures(report, str(tmp_path))
    assert len(figures) == 4
    for fig in figures.values():
        Image.open(io.BytesIO(figure_png(fig))).verify()
    page = (tmp_path / write_html_report(report, str(tmp_path))).read_text(encoding="utf-8")
    assert len(_pngs(page)) == 3  # no decisions directory: the length plot is a note


def test_example_html_highlights_both_mentions(tokenizer_dir):
    from dask_prep.coref.tokenization import ExampleTokenizer
    from dask_prep.coref.tokenizer import load_tokenizer

    # 서울이, not 서울은: the shared vocabulary has the token 서울은, and an antecedent joined
    # to its particle in one token is dropped (issue 22, reason `boundary`).
    text = "서울이 한국의 수도이다. 많은 사람이 지금 서울에 살고 있다."
    start = text.rindex("서울")
    candidate = Candidate("d0", "서울", 0, 2, start, start + 2, 1)
    encoder = ExampleTokenizer(TokenizeConfig(model=str(tokenizer_dir), seq_len=64))
    dropped: dict[str, int] = {}
    (batch,) = list(encoder.encode([(text, candidate)], dropped))
    (example,) = batch.to_pylist()
    shown = example_html(example, load_tokenizer(str(tokenizer_dir)))
    assert '<span class="ante" title="antecedent">서울' in shown
    assert '<span class="mask" title="masked mention">[MASK]</span><span class="target">→ 서울</span>' in shown
    assert "한국의 수도" in shown and "[CLS]" not in shown and "[SEP]" not in shown


def test_html_report_shows_measured_values(run_dir):
    from dask_prep.analysis.filters import describe_distribution, measured_distributions
    from dask_prep.document import Document

    folder, report = run_dir
    docs = [Document(doc_id=str(i), text="x", source="a", line=i) for i in range(3)]
    for doc, length in zip(docs, (50, 1000, 5000), strict=True):
        doc.metrics["length"] = length
    measured = measured_distributions(docs, preset("seed-v2"))
    report = {**report, "measured_values": {name: describe_distribution(d) for name, d in measured.items()}}
    page = (folder / write_html_report(report, str(folder))).read_text(encoding="utf-8")
    assert "Measured values per rule" in page
    row = re.search(r"<tr><td>length</td>(.*?)</tr>", page).group(1)
    assert re.findall(r'<td class="n">([^<]*)</td>', row) == ["800", "2,500", "3", "1", "1", "50", "2,017", "5,000"]
