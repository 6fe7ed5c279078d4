"""What one `derive` task does to one partition — plain Python, no Dask, no Kiwi.

It reads the partition's stage-1 part of the run it derives from (the kept documents, their
text and Kiwi tokens), checks it is the part that run recorded, runs the entity step with the
new config (`partition.add_candidates`, the same function a run calls after Kiwi) and writes
the new stage-1 part and stats. The stats keep the source partition's document counts (read,
malformed, rejected, kept) and say that Kiwi analysed nothing here; the tokenize stage then
runs as in `run` (`partition.tokenize_partition`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq

from dask_prep.config import Config
from dask_prep.coref.entities import summarize_entities
from dask_prep.coref.kept_analysis import ANALYSIS_FORMAT
from dask_prep.io import storage
from dask_prep.output.commit import stage_part
from dask_prep.output.layout import Layout, read_json
from dask_prep.pipeline.candidates import ANALYSIS_FORMAT_KEY, DERIVED_CANDIDATE_SCHEMA, add_candidates
from dask_prep.pipeline.partition import adopted, commit, completed_partition
from dask_prep.pipeline.timing import Stopwatch
from dask_prep.stats import AnalysisStats, PartRecord

# How a derived partition's stats name the analysis: the documents were judged by another run.
DERIVED_MODE = "derived"


class DeriveError(ValueError):
    """The run to derive from cannot give this dataset (a one-line message: exit 2)."""


def read_analysis_part(source: Layout, index: int) -> tuple[AnalysisStats, pa.Table]:
    """The source run's stats and stage-1 rows (doc_id, text, tokens) of one partition, checked.

    The part must be exactly what the source's stats record (rows and content hash) and in
    this version's token layout (`ANALYSIS_FORMAT`).
    """
    stats = AnalysisStats.from_json(read_json(source.stats("analyse", index)))
    path = source.part("candidates", index)
    data = storage.read_bytes(path)
    found = PartRecord(rows=pq.ParquetFile(io.BytesIO(data)).metadata.num_rows, sha256=hashlib.sha256(data).hexdigest())
    if found != stats.parts.get("candidates"):
        raise DeriveError(f"{path} differs from its run's record (rows {found.rows}); was the run directory changed?")
    table = pq.read_table(io.BytesIO(data))
    version = (table.schema.metadata or {}).get(ANALYSIS_FORMAT_KEY, b"0").decode()
    if version != str(ANALYSIS_FORMAT) or "tokens" not in table.column_names:
        raise DeriveError(
            f"{path} holds analysis format {version}, not {ANALYSIS_FORMAT}: run the corpus again with `dask-prep run`"
        )
    return stats, table.select(["doc_id", "text", "tokens"])


def derive_partition(
    index: int, config: Config, source: Layout, layout: Layout, *, resume: bool = False
) -> AnalysisStats:
    """Stage 1 of a derived run for one partition, from the source's part: candidates and stats."""
    earlier = adopted(layout, "analyse", index)  # as in a run: an attempt of this run committed it
    if earlier is not None:
        return earlier
    done, replaced = completed_partition(layout, "analyse", index, ("candidates",)) if resume else (None, None)
    if done is not None:
        return done
    clock = Stopwatch()
    with clock.stage("read"):
        judged, table = read_analysis_part(source, index)
    with clock.stage("entities"):
        rows = table.select(["doc_id", "text"]).to_pylist()
        for row, tokens in zip(rows, table.column("tokens").to_pylist(), strict=True):
            row["tokens"] = tokens
        stats = _judged_counts(judged)
        keys, proper = add_candidates(rows, config, stats)
        candidates = pa.Table.from_pylist(rows, schema=DERIVED_CANDIDATE_SCHEMA)
        staged = stage_part(layout, "candidates", index, [candidates], DERIVED_CANDIDATE_SCHEMA)
    stats = dataclasses.replace(
        stats,
        parts={"candidates": staged.record},
        summary=summarize_entities(keys, config.entities.max_entity_freq),
        proper_counts=proper,
        seconds=clock.seconds,
        replaced_on_resume=replaced,
    )
    return commit(layout, "analyse", stats, [staged])  # the stats last: they mark the partition done


def _judged_counts(judged: AnalysisStats) -> AnalysisStats:
    """The source partition's document accounting, without its entity counts or any Kiwi work."""
    return AnalysisStats(
        partition=judged.partition,
        source=judged.source,
        read=judged.read,
        malformed=judged.malformed,
        malformed_locations=judged.malformed_locations,
        rejected=judged.rejected,
        analysis_failures=judged.analysis_failures,
        kept=judged.kept,
        damaged=judged.damaged,
        distributions=judged.distributions,
        analysis_mode=DERIVED_MODE,
    )
