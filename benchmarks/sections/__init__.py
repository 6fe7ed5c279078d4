"""The benchmark's sections: one module each, found here by `discover()`; `run.py` drives them.

A section module defines:
- `NAMES`: the `--only` names it answers to (one, or several that must run interleaved);
- `ORDER`: when it runs among the others (lower first); `DEFAULT`: part of a plain run or not;
- `ROLES`: {role: row name} of the rows it makes (`{scale}`, `{fixed_docs}` are filled in);
- `run(ctx, selected)`: measure its rows with `ctx.bench` (`selected`: the names asked for);
- optionally `measure(ctx) -> {target: value}`: values of targets in targets.toml (None = SKIP);
- optionally `add_arguments(parser)`: options of its own.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from measure import Bench, Row


@dataclass
class Context:
    """What the sections share: the options, the corpus, the measured rows and their pairings."""

    args: argparse.Namespace
    bench: Bench
    shards: list[str] = field(default_factory=list)
    corpus: str = ""
    work: Path = Path(".")
    cores: int = 1
    kiwi_set: Any = None  # common.KiwiSet: the documents the pipeline sends to Kiwi
    texts_path: Path | None = None  # those texts, pickled for workloads/kiwi_limit.py
    names: dict[str, str] = field(default_factory=dict)  # role -> row name (every section's ROLES)
    repeats: dict[str, list[str]] = field(default_factory=dict)  # role -> its rows, one per repeat
    # ratio -> [(row, row or rows it is compared with)], one pair per repeat (report.paired_ratios)
    paired: dict[str, list[tuple[str, Any]]] = field(
        default_factory=lambda: {"filter": [], "end_to_end": [], "scaling": [], "kiwi_scaling": []}
    )
    chosen: dict[str, Row] = field(default_factory=dict)  # row name -> that side's median run
    ratios: dict[str, list[float]] = field(default_factory=dict)
    layout_rows: list[Row] = field(default_factory=list)
    report_blocks: list[str] = field(default_factory=list)  # printed after the diagnostics
    payload: dict[str, Any] = field(default_factory=dict)  # extra keys of the results JSON

    def repeated(self, role: str, k: int) -> str:
        """The row name of `role` in repeat k (k = 0 keeps the plain name)."""
        name = self.names[role] if k == 0 else f"{self.names[role]} #{k + 1}"
        self.repeats.setdefault(role, []).append(name)
        return name

    def row(self, role: str) -> Row | None:
        """The row of `role` (a repeated role's median run), or None if it was not measured."""
        return self.chosen.get(self.names.get(role, ""))


def discover() -> list[ModuleType]:
    """Every section module of this package, in run order."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    return sorted(modules, key=lambda module: module.ORDER)
