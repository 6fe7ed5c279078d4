"""The report: what happened to every input document, added up from partition stats.

The accounting invariant `read = malformed + Σ rejected + kept` is checked here for the
total (each partition already checked its own), and a violation is an error.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

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
    for stats in analysed:
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
    check_accounting(report)
    wall = seconds.get("total")
    if wall:
        report["throughput"]["docs_per_second"] = round(read / wall, 1)
        report["throughput"]["analysed_chars_per_second"] = round(analysed_chars / wall, 1)
    return report


def check_accounting(report: dict[str, Any]) -> None:
    docs = report["documents"]
    if docs["read"] != docs["malformed"] + docs["rejected"] + docs["kept"]:
        raise AccountingError(f"documents do not add up: {docs}")
    examples = report["examples"]
    if examples["after_cap"] != examples["written"] + sum(examples["dropped"].values()):
        raise AccountingError(f"examples do not add up: {examples}")


def write_report(report: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, "report.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(report, handle, ensure_ascii=False, indent=2)
    os.replace(tmp, path)
    return path


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short table for the end of a CLI run."""
    d, e = report["documents"], report["examples"]
    lines = [
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
    # "total" is this run's stages; the CLI's cluster start-up is its own line before them.
    labels = {"total": "stages total"}
    lines += [f"{labels.get(k, k) + ' seconds':<20}{v:>12,.1f}" for k, v in report["seconds"].items()]
    return lines


class TqdmProgress:
    """A bar per stage: documents done, docs/s and how many were kept (tqdm).

    tqdm switches itself off when stderr is not a terminal, so CI logs get no bar lines.
    """

    def __init__(self, disable: bool | None = None) -> None:
        self.disable = disable  # None: only on a terminal
        self.bars: dict[str, Any] = {}
        self.kept = 0

    def start(self, stage: str, partitions: int) -> None:
        from tqdm.auto import tqdm

        unit = "doc" if stage == "analyse" else "part"
        self.bars[stage] = tqdm(
            total=None if stage == "analyse" else partitions,
            desc=f"{stage:>8}",
            unit=unit,
            disable=self.disable,
            dynamic_ncols=True,
        )

    def update(self, stage: str, stats: dict[str, Any]) -> None:
        bar = self.bars[stage]
        if stage == "analyse":
            self.kept += stats["kept"]
            bar.update(stats["read"])
            bar.set_postfix(kept=self.kept, refresh=False)
        else:
            bar.update(1)
            bar.set_postfix(examples=stats["examples"], refresh=False)

    def finish(self, stage: str) -> None:
        self.bars.pop(stage).close()
