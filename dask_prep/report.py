"""The report: what happened to every input document, added up from partition stats.

The accounting invariant `read = malformed + Σ rejected + kept` is checked here for the
total (each partition already checked its own), and a violation is an error.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

from dask_prep import storage
from dask_prep.filters import describe_distribution, merge_distributions
from dask_prep.partition import AccountingError


def _add(counter: Counter, mapping: dict) -> None:
    for key, value in mapping.items():
        counter[key] += value


def build_report(
    analysed: list[dict],
    tokenized: list[dict],
    *,
    distinct_targets: int,
    capped_targets: int,
    duplicate_texts: int,
    seconds: dict[str, float],
    config: dict[str, Any],
    inputs: list[str],
) -> dict[str, Any]:
    malformed: Counter = Counter()
    rejected: Counter = Counter()
    dropped: Counter = Counter()
    locations: dict[str, list[str]] = {}
    damaged: dict[str, str] = {}
    analysis_failures: dict[str, list[str]] = {}
    for stats in analysed:
        for reason, where in stats.get("analysis_failures", {}).items():
            analysis_failures.setdefault(reason, []).extend(where)
        _add(malformed, stats["malformed"])
        _add(rejected, stats["rejected"])
        damaged.update(stats["damaged"])
        for reason, where in stats["malformed_locations"].items():
            locations.setdefault(reason, [])
            locations[reason].extend(where[: 5 - len(locations[reason])])
    for stats in tokenized:
        _add(dropped, stats["dropped"])
    read = sum(s["read"] for s in analysed)
    kept = sum(s["kept"] for s in analysed)
    analysed_chars = sum(s["analysed_chars"] for s in analysed)
    # Stats of partitions finished by a run from before progressive analysis have no mode:
    # they were analysed whole.
    kiwi_chars = sum(s.get("kiwi_chars", s["analysed_chars"]) for s in analysed)
    modes = sorted({s.get("analysis_mode", "full") for s in analysed})
    worker_seconds: Counter = Counter()
    for stats in analysed + tokenized:
        _add(worker_seconds, stats["seconds"])
    report = {
        "inputs": inputs,
        "partitions": {
            "total": len(analysed),
            "analysed": sum(not s.get("reused") for s in analysed),
            "analysis_reused": sum(bool(s.get("reused")) for s in analysed),
            "tokenized": sum(not s.get("reused") for s in tokenized),
            "tokenization_reused": sum(bool(s.get("reused")) for s in tokenized),
            # Analysed again with each document in a child process after a process died on them.
            "isolated": sum(bool(s.get("isolated")) for s in analysed),
        },
        "duplicate_texts": duplicate_texts,
        "documents": {
            "read": read,
            "malformed": sum(malformed.values()),
            "rejected": sum(rejected.values()),
            "kept": kept,
        },
        "malformed": dict(sorted(malformed.items())),
        "malformed_locations": locations,
        "damaged_files": damaged,
        "rejected": dict(rejected.most_common()),
        # file:line of every document whose Kiwi analysis crashed or hung its process.
        "analysis_failures": {reason: sorted(where) for reason, where in sorted(analysis_failures.items())},
        # How Kiwi was used (README, "Progressive analysis"): "progressive" decides a document
        # on a prefix where a rule can (its other analysis values are then null), "full"
        # analyses every candidate whole. Both keep the same documents.
        "analysis": {
            "mode": modes[0] if len(modes) == 1 else "mixed",
            "documents": sum(s["analysed_docs"] for s in analysed),
            "stopped_early": sum(s.get("stopped_early", 0) for s in analysed),
            "chars": analysed_chars,
            "kiwi_chars": kiwi_chars,
        },
        # Each rule's measured value over the documents that reached it (rules run in order
        # and stop at the first rejection), with histogram edges at the thresholds.
        "measured_values": {
            name: describe_distribution(dist)
            for name, dist in merge_distributions(s.get("distributions", {}) for s in analysed).items()
        },
        "entities": {
            "qualifying_in_kept_documents": sum(s["qualifying_entities"] for s in analysed),
            "distinct_targets": distinct_targets,
            "capped_targets": capped_targets,
        },
        "examples": {
            "before_cap": sum(s["candidates"] for s in analysed),
            "after_cap": sum(s["after_cap"] for s in tokenized),
            "dropped": dict(dropped),
            "written": sum(s["examples"] for s in tokenized),
        },
        "throughput": {
            # the documents that reached the analysis and their characters (mode-independent)
            "analysed_documents": sum(s["analysed_docs"] for s in analysed),
            "analysed_chars": analysed_chars,
            "kiwi_chars": kiwi_chars,  # characters Kiwi analysed (less, when progressive)
        },
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "worker_seconds": {k: round(v, 3) for k, v in worker_seconds.items()},
        "config": config,
        # Which worker did what: a reused partition was finished by an earlier (interrupted) run.
        "partition_log": [
            {
                "partition": a["partition"],
                "source": a["source"],
                "read": a["read"],
                "kept": a["kept"],
                "analysed_by": a.get("worker"),
                "analysis_reused": bool(a.get("reused")),
                "examples": t["examples"],
                "tokenized_by": t.get("worker"),
                "tokenization_reused": bool(t.get("reused")),
            }
            for a, t in zip(
                sorted(analysed, key=lambda s: s["partition"]),
                sorted(tokenized, key=lambda s: s["partition"]),
                strict=True,
            )
        ],
    }
    report["documents"]["kept_without_examples"] = sum(s.get("kept_without_examples", 0) for s in analysed)
    report["entities"]["giving_examples"] = sum(s.get("example_entities", 0) for s in analysed)
    report["tokenizer_coverage"] = tokenizer_coverage(tokenized)
    report["warnings"] = coverage_warnings(report["tokenizer_coverage"])
    check_accounting(report)
    wall = seconds.get("total")
    if wall:
        report["throughput"]["docs_per_second"] = round(read / wall, 1)
        report["throughput"]["analysed_chars_per_second"] = round(analysed_chars / wall, 1)
    return report


UNKNOWN_SHARE_WARNING = 0.01  # warn when more of the examples' tokens than this are unknown
TOP_UNKNOWN_CHARS = 30


def tokenizer_coverage(tokenized: list[dict]) -> dict[str, Any]:
    """The unknown token's share of the written examples' tokens, and what became it."""
    tokens = unknown = 0
    chars: Counter = Counter()
    for stats in tokenized:
        coverage = stats.get("coverage") or {}
        tokens += coverage.get("tokens", 0)
        unknown += coverage.get("unknown_tokens", 0)
        _add(chars, coverage.get("unknown_chars", {}))
    return {
        "tokens": tokens,
        "unknown_tokens": unknown,
        "unknown_share": round(unknown / tokens, 6) if tokens else 0.0,
        # Characters the tokenizer cannot spell on their own, in the unknown tokens.
        "unknown_chars": [
            {"char": ch, "codepoint": f"U+{ord(ch):04X}", "count": n} for ch, n in chars.most_common(TOP_UNKNOWN_CHARS)
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


def check_accounting(report: dict[str, Any]) -> None:
    docs = report["documents"]
    if docs["read"] != docs["malformed"] + docs["rejected"] + docs["kept"]:
        raise AccountingError(f"documents do not add up: {docs}")
    examples = report["examples"]
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
            f"documents decided on a prefix; Kiwi analysed {analysis['kiwi_chars']:,} of {analysis['chars']:,} chars)"
        )
    lines += [
        f"examples before cap {e['before_cap']:>12,}",
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

    def start(self, stage: str, partitions: int) -> None:
        from tqdm.auto import tqdm

        unit = "doc" if stage == "analyse" else "part"
        with self.lock:
            self.bars[stage] = tqdm(
                total=None if stage == "analyse" else partitions,
                desc=f"{stage:>8}",
                unit=unit,
                disable=self.disable,
                dynamic_ncols=True,
                miniters=1,  # every event may redraw (at most every mininterval)
                mininterval=0.5,
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

    def update(self, stage: str, stats: dict[str, Any]) -> None:
        with self.lock:
            bar = self.bars[stage]
            if stage == "analyse":
                before_judged, _ = self.in_progress.pop(stats["partition"], (0, 0))
                self.finished.add(stats["partition"])
                self.kept += stats["kept"]
                bar.set_postfix(kept=self._kept_so_far(), refresh=False)
                bar.update(stats["read"] - before_judged)
            else:
                self.examples += stats["examples"]
                bar.set_postfix(examples=self.examples, refresh=False)
                bar.update(1)

    def finish(self, stage: str) -> None:
        with self.lock:
            self.bars.pop(stage).close()
