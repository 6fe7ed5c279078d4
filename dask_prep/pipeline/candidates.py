"""Stage 1's candidates part: its schema and the entity step on its rows, and reading it back.

A run's part keeps each kept document's Kiwi tokens (`coref.kept_analysis`) so that `derive`
can make candidates again without Kiwi; both call `add_candidates`, the one entity step.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.config import Config
from dask_prep.coref.entities import Candidate, passes_cap
from dask_prep.coref.kept_analysis import ANALYSIS_FORMAT, decode_tokens, document_entities
from dask_prep.coref.names import NOT_PROPER, ProperCounts, merge_proper_counts
from dask_prep.io import storage
from dask_prep.stats import AnalysisStats

CANDIDATE_FIELDS = [
    pa.field("doc_id", pa.string()),
    pa.field("text", pa.string()),
    pa.field(
        "candidates",
        pa.list_(
            pa.struct(
                [
                    pa.field("target", pa.string()),
                    pa.field("antecedent_start", pa.int32()),
                    pa.field("antecedent_end", pa.int32()),
                    pa.field("start", pa.int32()),
                    pa.field("end", pa.int32()),
                    pa.field("key", pa.int64()),
                ]
            )
        ),
    ),
]
# Each kept document's Kiwi tokens (`coref.kept_analysis`), what `derive` makes candidates from
# again; the parts' metadata names their layout's version.
TOKENS_FIELD = pa.field(
    "tokens",
    pa.struct(
        [
            pa.field("form", pa.list_(pa.string())),  # null where it is the text it covers
            pa.field("tag", pa.list_(pa.string())),
            pa.field("start", pa.list_(pa.int32())),
            pa.field("len", pa.list_(pa.int32())),
        ]
    ),
)
ANALYSIS_FORMAT_KEY = b"dask_prep.analysis_format"
CANDIDATE_SCHEMA = pa.schema(
    [*CANDIDATE_FIELDS, TOKENS_FIELD], metadata={ANALYSIS_FORMAT_KEY: str(ANALYSIS_FORMAT).encode()}
)
# A derived run's candidates: no tokens (they stay in the run it derives from).
DERIVED_CANDIDATE_SCHEMA = pa.schema(CANDIDATE_FIELDS)


def add_candidates(
    rows: list[dict[str, Any]], config: Config, stats: AnalysisStats
) -> tuple[list[tuple[str, int]], ProperCounts]:
    """The entity step on stage-1 rows (doc_id, text, tokens): sets each row's `candidates` and
    counts them (and the title echoes) into `stats`; returns (target, key) of every candidate,
    for the cap's summary, and the rows' proper-noun counts, for the proper-noun share.

    `run` calls it on the documents Kiwi just kept, `derive` on the rows a run stored.
    """
    keys, proper = [], []
    for row in rows:
        found = document_entities(
            row["doc_id"], row["text"], decode_tokens(row["text"], row["tokens"]), config.entities
        )
        stats.qualifying_entities += found.qualifying
        stats.example_entities += found.giving_examples
        stats.echo += found.echoes
        stats.candidates += len(found.candidates)
        stats.kept_without_examples += not found.candidates
        keys.extend((c.target, c.key) for c in found.candidates)
        proper.append(found.proper_counts)
        row["candidates"] = [c.as_record() for c in found.candidates]
    return keys, merge_proper_counts(proper)


def iter_candidates(
    path: str | bytes, thresholds: dict[str, int], not_proper: list[int] | None = None
) -> Iterator[tuple[str, Candidate]]:
    """(text, candidate) pairs of a stage-1 part (a path, or its bytes) that pass the cap, in document order.

    Candidates of a target below `entities.min_proper_share` (threshold `NOT_PROPER`) are
    counted in `not_proper[0]` instead.
    """
    with io.BytesIO(path) if isinstance(path, bytes) else storage.open_read(path) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=256, columns=["doc_id", "text", "candidates"]):
            for row in batch.to_pylist():
                for record in row["candidates"]:
                    if not_proper is not None and thresholds.get(record["target"]) == NOT_PROPER:
                        not_proper[0] += 1
                    elif passes_cap(record["target"], record["key"], thresholds):
                        yield row["text"], Candidate(doc_id=row["doc_id"], **record)
