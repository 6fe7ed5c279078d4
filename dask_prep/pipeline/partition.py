"""What one task does to one partition — plain Python, no Dask.

Stage 1 (`analyse_partition`): read → quality filters → one Kiwi analysis → entities →
candidate examples, written to a parquet part, with counts and an entity summary for
the global cap. Stage 2 (`tokenize_partition`): apply the cap, tokenize, write the
output part. Both stage their parts, then commit them with the stats file in one step
(`dask_prep.output.commit`): a part that exists is complete, and when a run computes a
partition twice the first commit stands and every attempt returns it. Each returns its
partition's stats (`dask_prep.stats`), also written beside its parts, which the report adds up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from dask_prep.analysis.filters import FilterChain, measured_distributions
from dask_prep.analysis.isolation import analyser_for
from dask_prep.analysis.kiwi import get_kiwi
from dask_prep.config import Config
from dask_prep.coref.entities import summarize_entities
from dask_prep.coref.tokenization import ExampleTokenizer
from dask_prep.coref.tokenizer import PortableTokenizer
from dask_prep.dedup.exact import CopyKey
from dask_prep.dedup.rejects import apply_rejects
from dask_prep.document import Document
from dask_prep.io import storage
from dask_prep.io.reading import PartitionReader, PartitionSpec, read_partition
from dask_prep.output.commit import StagedPart, commit_partition, committed, discard, stage_part
from dask_prep.output.fencing import STATS_RUN_KEY, read_stats, record_of, verified_bytes
from dask_prep.output.layout import Layout, read_json
from dask_prep.pipeline.candidates import CANDIDATE_SCHEMA, add_candidates, iter_candidates
from dask_prep.pipeline.decisions import decisions_schema, decisions_table
from dask_prep.pipeline.timing import Stopwatch
from dask_prep.stats import AccountingError, AnalysisStats, Coverage, PartRecord, TokenizeStats, decision_stats


def part_record(path: str) -> PartRecord:
    """What a finished part is (written into its partition's stats): rows and a content hash."""
    with storage.open_read(path) as handle:
        return record_of(handle)


Stats = AnalysisStats | TokenizeStats
_STATS: dict[str, type[Stats]] = {"analyse": AnalysisStats, "tokenize": TokenizeStats}


def adopted(layout: Layout, stage: str, index: int) -> Stats | None:
    """The stats another attempt of this run committed for the partition (output/commit.py), if any."""
    data = committed(layout, stage, index)
    return None if data is None else _STATS[stage].from_json(data)


def commit(layout: Layout, stage: str, stats: Stats, staged: list[StagedPart]) -> Stats:
    """Publish this attempt's parts and stats; the first attempt of the run to commit wins (commit.py)."""
    data = {**stats.to_json(), STATS_RUN_KEY: layout.token or ""}
    earlier = commit_partition(layout, stage, stats.partition, staged, data)
    return stats if earlier is None else _STATS[stage].from_json(earlier)


def completed_partition(
    layout: Layout, stage: str, index: int, parts: tuple[str, ...]
) -> tuple[Stats | None, str | None]:
    """Is this partition's result from an earlier run reusable? (stats, None) if so; else (None, why not).

    Reusable means finished (its stats file exists) by this run or one it resumes (the
    token in the stats, output/fencing.py) with every part exactly what the stats record
    (rows and content hash). A part that differs (swapped, truncated, rewritten, written by
    another run) is never trusted: the partition is computed again and its new stats say why
    (`replaced_on_resume`). (None, None): it was simply not finished.
    """
    stats_path = layout.stats(stage, index)
    if not storage.exists(stats_path):
        return None, None
    try:
        data = read_json(stats_path)
    except (OSError, ValueError) as exc:
        return None, f"its stats file is unreadable ({type(exc).__name__})"
    if layout.token is not None and data.get(STATS_RUN_KEY, "") not in layout.accepted:
        return None, "its files were written by another run"
    stats = _STATS[stage].from_json(data)
    records = stats.parts
    for kind in parts:
        path = layout.part(kind, index)
        if not storage.exists(path):
            return None, f"{kind} part is missing"
        if kind not in records:
            return None, f"no record of its {kind} part"
        try:
            found = part_record(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors or OSErrors
            return None, f"{kind} part is unreadable ({type(exc).__name__})"
        if found != records[kind]:
            return None, f"{kind} part differs from its record (rows {found.rows} vs {records[kind].rows})"
    stats.reused = True
    return stats, None


def analyse_partition(
    spec: PartitionSpec,
    config: Config,
    layout: Layout,
    *,
    rejects: Mapping[CopyKey, tuple[str, str]] | None = None,
    write_decisions: bool = True,
    resume: bool = False,
    kiwi: Any = None,
    reader: PartitionReader | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    isolate: bool = False,
) -> AnalysisStats:
    """Stage 1 for one partition. Returns its stats, with an entity `summary` for the cap.

    `rejects` maps the copy key of each document dedup rejected in this partition to
    (reason, doc id of the kept copy).
    With `resume`, a partition that an earlier run finished is not computed again.
    `reader` reads the partition; one reader for consecutive partitions of a file reads
    that file once. `on_progress(judged, kept)` is called as documents are judged (see
    `FilterChain.run`). With `isolate` (an earlier attempt's process died on this partition),
    each document is analysed in a child process of its own (`dask_prep.analysis.isolation`).
    """
    # Computed again after a worker holding its result died, or a late attempt: the run's result stands.
    earlier = adopted(layout, "analyse", spec.index)
    if earlier is not None:
        return earlier
    parts = ("candidates", "decisions") if write_decisions else ("candidates",)
    done, replaced = completed_partition(layout, "analyse", spec.index, parts) if resume else (None, None)
    if done is not None:
        return done
    clock = Stopwatch()
    with clock.stage("read"):
        if reader is None:
            docs, damaged = read_partition(spec, config.input.text_field, config.input.id_field)
        else:
            docs, damaged = reader.read(spec)
        apply_rejects(docs, rejects or {})
    with clock.stage("filter"):
        chain = FilterChain(config)
        analyse = analyser_for(kiwi or get_kiwi(), config.input.analysis_timeout, isolate)
        kept = list(chain.run(docs, analyse, on_progress))
    with clock.stage("entities"):
        stats, staged = _entity_stats(spec, docs, damaged, kept, config, layout, write_decisions)
    stats = dataclasses.replace(
        stats,
        replaced_on_resume=replaced,
        seconds=clock.seconds,
        analysed_docs=chain.analysed_docs,
        analysed_chars=chain.analysed_chars,
        isolated=isolate,
        analysis_mode=chain.mode,
        kiwi_chars=chain.progress.kiwi_chars,
        stopped_early=chain.progress.stopped_early,
    )
    return commit(layout, "analyse", stats, staged)


def _entity_stats(
    spec: PartitionSpec,
    docs: list[Document],
    damaged: dict[str, str],
    kept: list[Document],
    config: Config,
    layout: Layout,
    write_decisions: bool,
) -> tuple[AnalysisStats, list[StagedPart]]:
    """The partition's counts and summary, and its candidates and decisions parts, staged (commit.py)."""
    stats = decision_stats(spec, docs, damaged)
    if stats.kept != len(kept):
        raise AccountingError(f"partition {spec.index}: {len(kept)} kept but {stats.kept} counted")
    rows = [{"doc_id": d.doc_id, "text": d.text, "tokens": d.kept_tokens} for d in kept]
    keys, proper = add_candidates(rows, config, stats)
    stats = dataclasses.replace(
        stats,
        summary=summarize_entities(keys, config.entities.max_entity_freq),
        proper_counts=proper,
        distributions=measured_distributions(docs, config),
    )
    staged = [
        stage_part(
            layout, "candidates", spec.index, [pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)], CANDIDATE_SCHEMA
        )
    ]
    if write_decisions:
        schema = decisions_schema(config)
        try:
            staged.append(stage_part(layout, "decisions", spec.index, [decisions_table(docs, schema)], schema))
        except BaseException:
            discard(staged)
            raise
    stats.parts = dict(zip(("candidates", "decisions"), (part.record for part in staged), strict=False))
    return stats, staged


def thresholds_digest(thresholds: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(sorted(thresholds.items()), ensure_ascii=False).encode()).hexdigest()[:16]


def tokenize_partition(
    index: int,
    config: Config,
    layout: Layout,
    thresholds: dict[str, int],
    *,
    tokenizer: PortableTokenizer | None = None,
    resume: bool = False,
) -> TokenizeStats:
    """Stage 2 for one partition: cap, tokenize, write the output part.

    `tokenizer` is the one the client checked; None loads `config.tokenize.model` here.
    """
    earlier = adopted(layout, "tokenize", index)  # as in stage 1: an attempt of this run committed it
    if earlier is not None:
        return earlier
    digest = thresholds_digest(thresholds)
    # What this partition's examples come from: its stage-1 part, as this run recorded it.
    candidates_path = layout.part("candidates", index)
    if layout.token is None:
        candidates_data = storage.read_bytes(candidates_path)
        candidates = record_of(io.BytesIO(candidates_data))
    else:
        candidates = AnalysisStats.from_json(read_stats(layout, "analyse", index)).parts["candidates"]
        candidates_data = verified_bytes(candidates_path, candidates)
    done, replaced = completed_partition(layout, "tokenize", index, ("examples",)) if resume else (None, None)
    # Reusable only if the cap decided the same, from the same stage-1 part.
    if done is not None and done.thresholds == digest and done.candidates == candidates:
        return done
    clock = Stopwatch()
    with clock.stage("tokenize"):
        encoder = ExampleTokenizer(config.tokenize, tokenizer)
        dropped: dict[str, int] = {}
        not_proper = [0]
        pairs = list(iter_candidates(candidates_data, thresholds, not_proper))
        staged = stage_part(layout, "examples", index, encoder.encode(pairs, dropped), encoder.schema)
        written, documents = staged.rows, len(encoder.documents_written)
    if written + sum(dropped.values()) != len(pairs):
        discard([staged])
        raise AccountingError(
            f"partition {index}: {len(pairs)} examples after the cap, "
            f"{written} written, {sum(dropped.values())} dropped"
        )
    stats = TokenizeStats(
        partition=index,
        parts={"examples": staged.record},
        candidates=candidates,
        not_proper=not_proper[0],
        after_cap=len(pairs),
        documents_with_examples=documents,
        over_model_max_length=encoder.over_max_length,
        dropped=dropped,
        examples=written,
        thresholds=digest,
        coverage=Coverage(**encoder.coverage()),
        seconds=clock.seconds,
        replaced_on_resume=replaced,
    )
    return commit(layout, "tokenize", stats, [staged])
