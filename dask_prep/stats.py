"""Typed per-partition statistics: what a task returns, its stats file, what the report adds up.

`AnalysisStats` (stage 1) and `TokenizeStats` (stage 2) are built by `dask_prep.pipeline.partition`
for one partition and written next to its parts (`to_json`; `from_json` reads them back on
`--resume`). `merge` adds two up and `total` a run's partitions, in partition order (which
decides the sample lists). Only the counts add up: what belongs to one partition (its
index, parts, entity summary, worker, whether it was reused, isolated or replaced) keeps its
default in a total, and the report takes it from the partitions themselves.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dask_prep.analysis.filters import merge_distributions
from dask_prep.analysis.isolation import CRASH, TIMEOUT
from dask_prep.coref.entities import Summary
from dask_prep.document import Document
from dask_prep.io.reading import MALFORMED_REASONS, PartitionSpec

SAMPLE_LOCATIONS = 5  # first file:line locations kept per malformed reason

S = TypeVar("S", bound="_Stats")


class AccountingError(RuntimeError):
    """read != malformed + rejected + kept: a bug, never to be written out as zeros."""


@dataclass(frozen=True)
class PartRecord:
    """What a finished part is: its rows and a content hash (checked before `--resume` reuses it)."""

    rows: int
    sha256: str


def add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Counts (or seconds) per key added up, the keys in first-seen order."""
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _joined(a: dict[str, list[str]], b: dict[str, list[str]], limit: int | None = None) -> dict[str, list[str]]:
    """The lists per key one after the other; with `limit`, the first `limit` of each key."""
    out = {key: list(items) for key, items in a.items()}
    for key, items in b.items():
        into = out.setdefault(key, [])
        into.extend(items if limit is None else items[: limit - len(into)])
    return out


class _Stats:
    """The stats file's form (`to_json`, `from_json`) and the total of several partitions."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, one key per field; an unset `replaced_on_resume` or `worker` is left out."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("replaced_on_resume", "worker"):
            if data[name] is None:
                del data[name]
        data["parts"] = {kind: dataclasses.asdict(record) for kind, record in data["parts"].items()}
        return data

    @classmethod
    def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The fields of `cls` that `data` has (other keys are ignored), with typed part records."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {key: value for key, value in data.items() if key in names}
        known["parts"] = {kind: PartRecord(**record) for kind, record in (data.get("parts") or {}).items()}
        return known

    def merge(self: S, other: S) -> S:
        raise NotImplementedError

    @classmethod
    def total(cls: type[S], stats: Iterable[S]) -> S:
        """All of `stats` added up, in their order (an empty total for none)."""
        return functools.reduce(cls.merge, stats, cls())


def _mode(a: str | None, b: str | None) -> str | None:
    return a if b is None or a == b else b if a is None else "mixed"


# The counts of `AnalysisStats` that a total adds up as they are.
_ANALYSIS_SUMS = (
    "read",
    "kept",
    "qualifying_entities",
    "example_entities",
    "kept_without_examples",
    "candidates",
    "echo",
    "analysed_docs",
    "analysed_chars",
    "kiwi_chars",
    "stopped_early",
)


@dataclass
class AnalysisStats(_Stats):
    """Stage 1 of one partition (`dask_prep.pipeline.partition.analyse_partition`), or a total (`merge`)."""

    partition: int | None = None  # None in a total
    source: str = ""
    read: int = 0
    malformed: dict[str, int] = field(default_factory=dict)  # per reason of `reading.MALFORMED_REASONS`
    malformed_locations: dict[str, list[str]] = field(default_factory=dict)  # first SAMPLE_LOCATIONS per reason
    rejected: dict[str, int] = field(default_factory=dict)  # per rule
    analysis_failures: dict[str, list[str]] = field(default_factory=dict)  # file:line whose analysis crashed or hung
    kept: int = 0
    damaged: dict[str, str] = field(default_factory=dict)  # file -> the error that cut it short
    parts: dict[str, PartRecord] = field(default_factory=dict)
    replaced_on_resume: str | None = None  # why an earlier run's parts were not reused
    qualifying_entities: int = 0  # in kept documents
    example_entities: int = 0  # those that may give examples
    kept_without_examples: int = 0
    candidates: int = 0  # examples before the cap
    echo: int = 0  # later mentions right after a title line holding the antecedent (not candidates)
    summary: Summary | None = None  # of the entities, for the cap; left out once the cap has it
    # {surface: [proper, whole-word noun occurrences]} (`coref.names.proper_counts`); like `summary`
    proper_counts: dict | None = None
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)  # `filters.measured_distributions`
    seconds: dict[str, float] = field(default_factory=dict)
    analysed_docs: int = 0  # that reached the analysis, and their characters
    analysed_chars: int = 0
    isolated: bool = False  # each document analysed in a child process (`dask_prep.analysis.isolation`)
    analysis_mode: str | None = None  # "full" or "progressive"; a total of both: "mixed"
    kiwi_chars: int = 0  # the characters Kiwi analysed (fewer, when progressive)
    stopped_early: int = 0  # documents decided on a prefix
    reused: bool = False  # finished by an earlier run (`--resume`)
    worker: str | None = None  # the worker's address (set by the graph, not written)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnalysisStats:
        known = cls._known(data)
        # Written before progressive analysis (no mode): analysed whole.
        known.setdefault("analysis_mode", "full")
        known.setdefault("kiwi_chars", data.get("analysed_chars", 0))
        return cls(**known)

    def merge(self, other: AnalysisStats) -> AnalysisStats:
        return AnalysisStats(
            **{name: getattr(self, name) + getattr(other, name) for name in _ANALYSIS_SUMS},
            malformed=add_counts(self.malformed, other.malformed),
            malformed_locations=_joined(self.malformed_locations, other.malformed_locations, SAMPLE_LOCATIONS),
            rejected=add_counts(self.rejected, other.rejected),
            analysis_failures=_joined(self.analysis_failures, other.analysis_failures),
            damaged={**self.damaged, **other.damaged},
            distributions=merge_distributions([self.distributions, other.distributions]),
            seconds=add_counts(self.seconds, other.seconds),
            analysis_mode=_mode(self.analysis_mode, other.analysis_mode),
        )


def decision_stats(spec: PartitionSpec, docs: list[Document], damaged: dict[str, str]) -> AnalysisStats:
    """The stats of a partition's judged documents: read = malformed + rejected + kept."""
    stats = AnalysisStats(partition=spec.index, source=", ".join(dict.fromkeys(spec.sources)), damaged=damaged)
    for doc in docs:
        reason = doc.rejected_by
        if reason in MALFORMED_REASONS:
            stats.malformed[reason] = stats.malformed.get(reason, 0) + 1
            where = stats.malformed_locations.setdefault(reason, [])
            if len(where) < SAMPLE_LOCATIONS:
                where.append(f"{doc.source}:{doc.line}")
        elif reason is not None:
            stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
            if reason in (CRASH, TIMEOUT):
                stats.analysis_failures.setdefault(reason, []).append(f"{doc.source}:{doc.line}")
    stats.read = len(docs)
    stats.kept = len(docs) - sum(stats.malformed.values()) - sum(stats.rejected.values())
    if len(docs) != spec.records and not damaged:
        raise AccountingError(
            f"partition {spec.index} ({', '.join(spec.sources)}) read {len(docs)} documents, expected {spec.records}"
        )
    return stats


@dataclass
class Coverage:
    """The written examples' tokens, the unknown ones, and the characters that became them."""

    tokens: int = 0
    unknown_tokens: int = 0
    unknown_chars: dict[str, int] = field(default_factory=dict)  # the most frequent of each partition

    def merge(self, other: Coverage) -> Coverage:
        return Coverage(
            self.tokens + other.tokens,
            self.unknown_tokens + other.unknown_tokens,
            add_counts(self.unknown_chars, other.unknown_chars),
        )


@dataclass
class TokenizeStats(_Stats):
    """Stage 2 of one partition (`dask_prep.pipeline.partition.tokenize_partition`), or a total (`merge`)."""

    partition: int | None = None  # None in a total
    parts: dict[str, PartRecord] = field(default_factory=dict)
    candidates: PartRecord | None = None  # the stage-1 part the examples were made from
    not_proper: int = 0  # candidates of targets below entities.min_proper_share (before the cap)
    after_cap: int = 0
    documents_with_examples: int = 0  # documents with at least one written example
    over_model_max_length: int = 0  # written rows longer than the tokenizer's model_max_length
    dropped: dict[str, int] = field(default_factory=dict)  # examples not written, per reason
    examples: int = 0  # written
    thresholds: str = ""  # digest of the cap thresholds applied (`partition.thresholds_digest`)
    coverage: Coverage = field(default_factory=Coverage)
    seconds: dict[str, float] = field(default_factory=dict)
    reused: bool = False  # finished by an earlier run (`--resume`)
    replaced_on_resume: str | None = None  # why an earlier run's part was not reused
    worker: str | None = None  # the worker's address (set by the graph, not written)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["candidates"] = dataclasses.asdict(self.candidates) if self.candidates is not None else None
        data["coverage"] = dataclasses.asdict(self.coverage)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenizeStats:
        known = cls._known(data)
        if data.get("candidates") is not None:
            known["candidates"] = PartRecord(**data["candidates"])
        # Written before coverage was counted: none.
        known["coverage"] = Coverage(**(data.get("coverage") or {}))
        return cls(**known)

    def merge(self, other: TokenizeStats) -> TokenizeStats:
        return TokenizeStats(
            not_proper=self.not_proper + other.not_proper,
            after_cap=self.after_cap + other.after_cap,
            documents_with_examples=self.documents_with_examples + other.documents_with_examples,
            over_model_max_length=self.over_model_max_length + other.over_model_max_length,
            dropped=add_counts(self.dropped, other.dropped),
            examples=self.examples + other.examples,
            coverage=self.coverage.merge(other.coverage),
            seconds=add_counts(self.seconds, other.seconds),
        )
