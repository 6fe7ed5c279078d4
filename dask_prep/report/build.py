"""The report: what happened to every input document, added up from partition stats.

The accounting invariant `read = malformed + Σ rejected + kept` is checked here for the
total (each partition already checked its own), and a violation is an error.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from dask_prep.analysis.filters import describe_distribution
from dask_prep.io import storage
from dask_prep.output.shards import RowsDone
from dask_prep.stats import AccountingError, AnalysisStats, TokenizeStats, add_counts


def build_report(
    analysed: list[AnalysisStats],
    tokenized: list[TokenizeStats],
    *,
    distinct_targets: int,
    capped_targets: int,
    not_proper_targets: int = 0,
    model_max_length: int | None = None,
    duplicate_texts: int,
    seconds: dict[str, float],
    config: dict[str, Any],
    inputs: list[str],
) -> dict[str, Any]:
    a, t = AnalysisStats.total(analysed), TokenizeStats.total(tokenized)
    coverage = tokenizer_coverage(tokenized)
    report = {
        "inputs": inputs,
        "partitions": _partition_counts(analysed, tokenized),
        "duplicate_texts": duplicate_texts,
        "documents": {
            "read": a.read,
            "malformed": sum(a.malformed.values()),
            "rejected": sum(a.rejected.values()),
            "kept": a.kept,
            # kept documents none of whose examples was written (no candidate, or all dropped or capped)
            "kept_without_examples": a.kept - t.documents_with_examples,
            "kept_without_candidates": a.kept_without_examples,
        },
        "malformed": dict(sorted(a.malformed.items())),
        "malformed_locations": a.malformed_locations,
        "damaged_files": a.damaged,
        "rejected": dict(Counter(a.rejected).most_common()),
        # file:line of every document whose Kiwi analysis crashed or hung its process.
        "analysis_failures": {reason: sorted(where) for reason, where in sorted(a.analysis_failures.items())},
        # How Kiwi was used (README, "Progressive analysis"): "progressive" decides a document
        # on a prefix where a rule can (its other analysis values are then null), "full"
        # analyses every candidate whole. Both keep the same documents.
        "analysis": {
            "mode": a.analysis_mode or "mixed",  # None: no partition at all
            "documents": a.analysed_docs,
            "stopped_early": a.stopped_early,
            "chars": a.analysed_chars,
            "kiwi_chars": a.kiwi_chars,
        },
        # Each rule's measured value over the documents that reached it (rules run in order
        # and stop at the first rejection), with histogram edges at the thresholds.
        "measured_values": {name: describe_distribution(dist) for name, dist in a.distributions.items()},
        # Counted per document (an entity of two documents counts twice) unless "distinct".
        "entities": {
            "qualifying_in_kept_documents": a.qualifying_entities,
            "per_document_targets": a.example_entities,
            "distinct_targets": distinct_targets,
            "not_proper_targets": not_proper_targets,
            "capped_targets": capped_targets,
        },
        "examples": {
            "echo": a.echo,  # later mentions echoing a title line: never candidates
            "before_cap": a.candidates,
            "not_proper_noun": t.not_proper,
            "over_cap": a.candidates - t.not_proper - t.after_cap,
            "after_cap": t.after_cap,
            "dropped": t.dropped,
            "written": t.examples,
        },
        "throughput": _throughput(a, seconds.get("total")),
        "seconds": _rounded(seconds),
        "worker_seconds": _rounded(add_counts(a.seconds, t.seconds)),
        "config": config,
        "partition_log": partition_log(analysed, tokenized),
        "tokenizer_coverage": coverage,
        "warnings": coverage_warnings(coverage)
        + length_warnings(t.over_model_max_length, t.examples, model_max_length),
    }
    report["examples"]["over_model_max_length"] = t.over_model_max_length
    report["examples"]["model_max_length"] = model_max_length
    check_accounting(report)
    return report


def _partition_counts(analysed: list[AnalysisStats], tokenized: list[TokenizeStats]) -> dict[str, int]:
    return {
        "total": len(analysed),
        "analysed": sum(not s.reused for s in analysed),
        "analysis_reused": sum(s.reused for s in analysed),
        "tokenized": sum(not s.reused for s in tokenized),
        "tokenization_reused": sum(s.reused for s in tokenized),
        # Analysed again with each document in a child process after a process died on them.
        "isolated": sum(s.isolated for s in analysed),
    }


def _rounded(seconds: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in seconds.items()}


def _throughput(total: AnalysisStats, wall: float | None) -> dict[str, Any]:
    throughput = {
        # the documents that reached the analysis and their characters (mode-independent)
        "analysed_documents": total.analysed_docs,
        "analysed_chars": total.analysed_chars,
        "kiwi_chars": total.kiwi_chars,  # characters Kiwi analysed (less, when progressive)
    }
    if wall:
        throughput["docs_per_second"] = round(total.read / wall, 1)
        throughput["analysed_chars_per_second"] = round(total.analysed_chars / wall, 1)
    return throughput


def partition_log(analysed: list[AnalysisStats], tokenized: list[TokenizeStats]) -> list[dict[str, Any]]:
    """Which worker did what: a reused partition was finished by an earlier (interrupted) run."""
    return [
        {
            "partition": a.partition,
            "source": a.source,
            "read": a.read,
            "kept": a.kept,
            "analysed_by": a.worker,
            "analysis_reused": a.reused,
            "examples": t.examples,
            "tokenized_by": t.worker,
            "tokenization_reused": t.reused,
        }
        for a, t in zip(
            sorted(analysed, key=lambda s: s.partition),
            sorted(tokenized, key=lambda s: s.partition),
            strict=True,
        )
    ]


UNKNOWN_SHARE_WARNING = 0.01  # warn when more of the examples' tokens than this are unknown
TOP_UNKNOWN_CHARS = 30


def tokenizer_coverage(tokenized: Iterable[TokenizeStats]) -> dict[str, Any]:
    """The unknown token's share of the written examples' tokens, and what became it."""
    total = TokenizeStats.total(tokenized).coverage
    tokens, unknown = total.tokens, total.unknown_tokens
    return {
        "tokens": tokens,
        "unknown_tokens": unknown,
        "unknown_share": round(unknown / tokens, 6) if tokens else 0.0,
        # Characters the tokenizer cannot spell on their own, in the unknown tokens.
        "unknown_chars": [
            {"char": ch, "codepoint": f"U+{ord(ch):04X}", "count": n}
            for ch, n in Counter(total.unknown_chars).most_common(TOP_UNKNOWN_CHARS)
        ],
    }


def coverage_warnings(coverage: dict[str, Any]) -> list[str]:
    if coverage["unknown_share"] <= UNKNOWN_SHARE_WARNING:
        return []
    top = " ".join(c["char"] for c in coverage["unknown_chars"][:10])
    return [
        f"{coverage['unknown_share']:.1%} of the examples' tokens are the tokenizer's unknown token "
        f"({coverage['unknown_tokens']:,} of {coverage['tokens']:,}); most frequent characters it cannot "
        f"spell: {top or 'none single (whole words too long)'}; see report.json tokenizer_coverage"
    ]


def length_warnings(over: int, written: int, model_max_length: int | None) -> list[str]:
    """One line when written rows are longer than the tokenizer's `model_max_length`."""
    if not over or model_max_length is None:
        return []
    return [
        f"{over:,} of {written:,} examples ({over / written:.1%}) are longer than the tokenizer's "
        f"model_max_length ({model_max_length:,} tokens): a model of that length cannot read them whole; "
        "lower --seq-len to fit it"
    ]


def check_accounting(report: dict[str, Any]) -> None:
    docs = report["documents"]
    if docs["read"] != docs["malformed"] + docs["rejected"] + docs["kept"]:
        raise AccountingError(f"documents do not add up: {docs}")
    examples = report["examples"]
    if examples["over_cap"] < 0:
        raise AccountingError(f"examples do not add up: {examples}")
    if examples["after_cap"] != examples["written"] + sum(examples["dropped"].values()):
        raise AccountingError(f"examples do not add up: {examples}")


def write_report(report: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, "report.json")
    storage.write_json(report, path, indent=2)
    return path


def summary_lines(report: dict[str, Any], resumed: bool = False) -> list[str]:
    """A short table for the end of a CLI run; after `--resume` (`resumed`), what was reused."""
    d, e = report["documents"], report["examples"]
    p = report["partitions"]
    lines = [f"partitions          {p['total']:>12,}"]
    if resumed or p["analysis_reused"] or p["tokenization_reused"]:
        lines += [
            f"  analysis reused   {p['analysis_reused']:>12,}",
            f"  tokenized reused  {p['tokenization_reused']:>12,}",
        ]
    lines += [
        f"documents read      {d['read']:>12,}",
        f"  malformed         {d['malformed']:>12,}",
        f"  rejected          {d['rejected']:>12,}",
        f"  kept              {d['kept']:>12,}",
    ]
    lines += [f"    {reason:<18}{count:>10,}" for reason, count in report["rejected"].items()]
    analysis = report.get("analysis")
    if analysis:
        lines.append(
            f"analysis            {analysis['mode']:>12}  ({analysis['stopped_early']:,} of {analysis['documents']:,} "
            f"documents decided on a prefix; {analysis['chars']:,} chars of candidate documents, "
            f"{analysis['kiwi_chars']:,} analysed by Kiwi counting chunks and whole documents)"
        )
    lines += [
        f"examples before cap {e['before_cap']:>12,}  (later mentions; {e.get('echo', 0):,} title echoes not counted)",
        f"  not proper nouns  {e.get('not_proper_noun', 0):>12,}",
        f"  over the cap      {e.get('over_cap', 0):>12,}",
        f"examples after cap  {e['after_cap']:>12,}",
    ]
    lines += [f"  dropped {reason:<10}{count:>12,}" for reason, count in e["dropped"].items()]
    lines.append(f"examples written    {e['written']:>12,}")
    for split, sizes in report.get("splits", {}).items():
        lines.append(f"  {split:<18}{sizes['examples']:>12,}  ({sizes['documents']:,} documents)")
    coverage = report.get("tokenizer_coverage")
    if coverage:
        lines.append(f"unknown tokens      {coverage['unknown_share']:>12.2%}")
    for reason, where in report.get("analysis_failures", {}).items():
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        lines.append(f"{reason}: {len(where)} document(s) rejected ({shown})")
    # "total" is this run's stages; the CLI's cluster start-up is its own line before them.
    labels = {"total": "stages total"}
    lines += [f"{labels.get(k, k) + ' seconds':<20}{v:>12,.1f}" for k, v in report["seconds"].items()]
    return lines


class TqdmProgress:
    """A bar per stage (tqdm): documents judged of the total with docs/s, ETA and the kept
    count, moving inside partitions (`advance`); then partitions tokenized and examples written.

    tqdm switches itself off when stderr is not a terminal, so CI logs get no bar lines.
    """

    def __init__(self, disable: bool | None = None) -> None:
        self.disable = disable  # None: only on a terminal
        self.bars: dict[str, Any] = {}
        self.kept = 0  # in finished partitions
        self.examples = 0
        self.in_progress: dict[int, tuple[int, int]] = {}  # partition -> (judged, kept) so far
        self.finished: set[int] = set()
        # advance() comes from the client's event loop thread, update() from the caller's.
        self.lock = threading.Lock()

    def begin(self, step: str) -> None:
        """A line naming the step, where the bars are shown (a terminal, unless disabled)."""
        from tqdm.auto import tqdm

        shown = not self.disable if self.disable is not None else sys.stderr.isatty()
        if shown:
            with self.lock:
                tqdm.write(f"dask-prep: {step}", file=sys.stderr)

    def tasks(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            if stage not in self.bars:
                self.bars[stage] = self._bar(stage, total, "task")
            bar = self.bars[stage]
            bar.total = total
            bar.update(done - bar.n)

    def start(self, stage: str, partitions: int) -> None:
        unit = {"analyse": "doc", "sort": "row", "publish": "row"}.get(stage, "part")
        with self.lock:
            self.bars[stage] = self._bar(stage, None if stage == "analyse" else partitions, unit)

    def _bar(self, stage: str, total: int | None, unit: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            desc=f"{stage:>8}",
            unit=unit,
            disable=self.disable,
            dynamic_ncols=True,
            miniters=1,  # every event may redraw (at most every mininterval)
            mininterval=0.5,
            # The rate and time left over the whole stage, in documents: progress arrives in
            # steps of uneven size (bursts of cheap rejections, partitions ending), which a
            # moving average of the latest steps turns into a time left that jumps.
            smoothing=0,
        )

    def set_total(self, stage: str, documents: int) -> None:
        with self.lock:
            bar = self.bars[stage]
            bar.total = documents
            bar.refresh()

    def advance(self, stage: str, partition: int, judged: int, kept: int) -> None:
        with self.lock:
            if stage not in self.bars or partition in self.finished:
                return  # an event that arrived after its partition's stats
            before_judged, before_kept = self.in_progress.get(partition, (0, 0))
            # A partition recomputed elsewhere (a lost worker) starts again from 0: the bar does not go back.
            judged, kept = max(judged, before_judged), max(kept, before_kept)
            self.in_progress[partition] = (judged, kept)
            bar = self.bars[stage]
            bar.set_postfix(kept=self._kept_so_far(), refresh=False)
            bar.update(judged - before_judged)

    def _kept_so_far(self) -> int:
        return self.kept + sum(kept for _, kept in self.in_progress.values())

    def update(self, stage: str, stats: AnalysisStats | TokenizeStats | RowsDone) -> None:
        with self.lock:
            bar = self.bars[stage]
            if stage in ("sort", "publish"):  # publication: rows of the total (output.shards.RowsDone)
                bar.update(stats.rows)
            elif stage == "analyse":
                before_judged, _ = self.in_progress.pop(stats.partition, (0, 0))
                self.finished.add(stats.partition)
                self.kept += stats.kept
                bar.set_postfix(kept=self._kept_so_far(), refresh=False)
                bar.update(stats.read - before_judged)
            elif stage == "tokenize":
                self.examples += stats.examples
                bar.set_postfix(examples=self.examples, refresh=False)
                bar.update(1)
            else:  # counted in partitions only (derive's entities)
                bar.update(1)

    def finish(self, stage: str) -> None:
        with self.lock:
            bar = self.bars.pop(stage, None)
            if bar is not None:  # a stage of tasks may end before its first count
                bar.close()
