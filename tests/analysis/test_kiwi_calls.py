"""At most one Kiwi analysis per document, counted on a real Kiwi in the real stage-1 path.

A counting proxy wraps a real Kiwi and is handed to `analyse_partition`, which reads the
partition, runs `FilterChain` (cheap rules, one batch analysis, word and entity rules)
and writes the decisions. Every text Kiwi is asked to analyse is counted by object
identity, so two documents with equal text still count apart.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.data import needs_shared

from dask_prep.analysis.filters import FILTERS
from dask_prep.analysis.kiwi import get_kiwi
from dask_prep.config import preset
from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file
from dask_prep.output.layout import Layout
from dask_prep.pipeline.partition import analyse_partition

RECORDS = 200  # the first records of shard 00000: enough for every kind of decision


class CountingKiwi:
    """A real Kiwi that counts every text it analyses, whichever method is used."""

    ANALYSES = ("tokenize", "analyze", "split_into_sents")

    def __init__(self, kiwi: Any) -> None:
        self._kiwi = kiwi
        self.analyses: Counter = Counter()  # id(text) -> analyses
        self.texts: dict[int, str] = {}  # keeps each counted text alive, so ids stay unique
        self.calls = 0

    def _count(self, text: str) -> None:
        self.texts[id(text)] = text
        self.analyses[id(text)] += 1

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._kiwi, name)
        if name not in self.ANALYSES:
            return target

        def counted(text: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if isinstance(text, str):
                self._count(text)
                return target(text, *args, **kwargs)
            texts = list(text)
            for t in texts:
                self._count(t)
            return target(texts, *args, **kwargs)

        return counted


@needs_shared
@pytest.mark.parametrize("preset_name", ["seed-v2", "fineweb2-ko"])
def test_at_most_one_kiwi_analysis_per_document(preset_name, shard0, tmp_path):
    config = preset(preset_name)
    config.input.dedup = False
    # Whole documents (--full-analysis); progressive analysis is counted in test_progressive_analysis.py.
    config.analysis.progressive = False
    files = resolve_inputs([str(shard0)])
    spec = plan_partitions(files, [scan_file(files[0]).records], RECORDS)[0]
    kiwi = CountingKiwi(get_kiwi())

    stats = analyse_partition(spec, config, Layout(str(tmp_path)), kiwi=kiwi)

    assert kiwi.calls >= 1
    assert max(kiwi.analyses.values()) == 1, "a document was analysed more than once"
    assert sum(kiwi.analyses.values()) == stats.analysed_docs
    # Exactly the documents that passed the rules needing no analysis went to Kiwi.
    decisions = pq.read_table(Layout(str(tmp_path)).part("decisions", spec.index)).to_pylist()
    assert len(decisions) == RECORDS
    docs, _ = read_partition(spec, config.input.text_field, config.input.id_field)
    text_of = {d.doc_id: d.text for d in docs}
    cheap_rules = {name for name in config.rules if not FILTERS[name].needs_analysis}
    expected = Counter(
        text_of[row["doc_id"]]
        for row in decisions
        if text_of[row["doc_id"]] is not None and row["rejected_by"] not in cheap_rules
    )
    assert Counter(kiwi.texts.values()) == expected
    print(
        f"\n{preset_name}: {RECORDS} documents, {stats.analysed_docs} analysed once each "
        f"in {kiwi.calls} Kiwi call(s), {RECORDS - stats.analysed_docs} rejected before Kiwi"
    )
