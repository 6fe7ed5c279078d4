"""Issue 32, case 7: report.html draws every plot whatever the config's values (no cluster)."""

from __future__ import annotations

import math
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dask_prep.config import preset
from dask_prep.coref.tokenization import output_schema
from dask_prep.output.layout import Layout
from dask_prep.pipeline.decisions import decisions_schema
from dask_prep.pipeline.partition import CANDIDATE_SCHEMA
from dask_prep.report.html import write_html_report

# (entities changes, length rule) that a report may hold: from a config, the Python API or an old run.
EXTREME = {
    "max_distance_1e30": ({"max_distance": 10**30}, None),
    "max_distance_2_62": ({"max_distance": 2**62}, None),
    "max_distance_float": ({"max_distance": 1e300}, None),
    "max_distance_inf": ({"max_distance": math.inf}, None),
    "max_distance_nan": ({"max_distance": math.nan}, None),
    "max_distance_zero": ({"max_distance": 0}, None),
    "max_distance_negative": ({"max_distance": -5}, None),
    "max_distance_text": ({"max_distance": "far"}, None),
    "cap_huge": ({"max_entity_freq": 10**30}, None),
    "cap_negative": ({"max_entity_freq": -3}, None),
    "length_huge": ({}, {"enabled": True, "min": 1e-300, "max": 1e300}),
    "length_infinite": ({}, {"enabled": True, "min": -math.inf, "max": math.inf}),
    "length_nan": ({}, {"enabled": True, "min": math.nan, "max": 10**30}),
}


def _write(table: pa.Table, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)


def _parts(root: str, distances: list[int]) -> None:
    config = preset("seed-v2")
    layout = Layout(root)
    schema = decisions_schema(config)
    decisions = {name: [None, None] for name in schema.names}
    decisions.update(doc_id=["d0", "d1"], source=["a.jsonl"] * 2, line=[1, 2], chars=[1000, 10**9])
    _write(pa.Table.from_pydict(decisions, schema=schema), layout.part("decisions", 0))
    record = {"target": "서울", "antecedent_start": 0, "antecedent_end": 2, "start": 20, "end": 22, "key": 1}
    candidates = [{"doc_id": "d0", "text": "본문", "candidates": [record]}]
    _write(pa.Table.from_pylist(candidates, schema=CANDIDATE_SCHEMA), layout.part("candidates", 0))
    example = {
        "doc_id": "d0",
        "input_ids": [2, 4, 3],
        "attention_mask": [1, 1, 1],
        "token_type_ids": [0, 0, 0],
        "labels": [-100, 5, -100],
        "target": "서울",
        "target_ids": [5],
        "antecedent_pos": 0,
        "mask_start": 1,
        "mask_end": 2,
        "antecedent_start": 1,
        "antecedent_end": 2,
    }
    rows = [{**example, "coref_pos": d, "distance": d} for d in distances]
    _write(pa.Table.from_pylist(rows, schema=output_schema(with_token_type_ids=True)), layout.part("examples", 0))


@pytest.mark.parametrize("name", list(EXTREME))
def test_every_plot_is_drawn_whatever_the_values(name, tmp_path, caplog):
    entities, length = EXTREME[name]
    _parts(str(tmp_path), [15, 1999, 2**31 - 1])
    config = preset("seed-v2").to_dict()
    config["entities"].update(entities)
    if length is not None:
        config["rules"]["length"] = length
    report = {
        "documents": {"read": 2, "malformed": 0, "rejected": 1, "kept": 1},
        "rejected": {"length": 1},
        "malformed": {},
        "examples": {"before_cap": 3, "after_cap": 3, "dropped": {}, "written": 3},
        "partition_log": [{}],
        "config": config,
    }
    page = open(write_html_report(report, str(tmp_path)), encoding="utf-8").read()
    assert "could not be drawn" not in page and "plots could not" not in caplog.text
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 4
