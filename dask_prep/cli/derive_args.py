"""`dask-prep derive`'s parser: `run`'s very options after the analysis, and RUN_DIR."""

from __future__ import annotations

import argparse
from typing import Any

# `run`'s options that `derive` takes too (the same actions): what comes after the analysis, the
# output and the cluster. Anything else needs Kiwi again and is `run`'s alone.
DERIVE_OPTIONS = (
    "output_dir",
    "config",
    "model",
    "seq_len",
    "mask_style",
    "pad_to_max_length",
    "max_entity_freq",
    "validation_fraction",
    "source",
    "license",
    "storage_options",
    "scheduler",
    "n_workers",
    "threads_per_worker",
    "memory_limit",
    "dashboard_address",
    "worker_profile",
    "overwrite",
    "resume",
)


def add_derive(sub: Any, run: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    derive = sub.add_parser(
        "derive",
        help="another dataset from a finished run's analysis, without Kiwi",
        description="Make another dataset from the analysis a finished `dask-prep run` left in RUN_DIR: "
        "another tokenizer, --seq-len, mask style, cap, split or entities.* config, without Kiwi. "
        "A change that needs Kiwi again (rules, inputs, dedup) is refused.",
        formatter_class=run.formatter_class,
        parents=parents,
    )
    derive.add_argument("run_dir", metavar="RUN_DIR", help="the --output-dir of a finished run (a directory or URL)")
    for action in run._actions:
        if action.dest in DERIVE_OPTIONS:
            derive._add_action(action)  # the very option of `run`, as argparse's `parents` shares them
