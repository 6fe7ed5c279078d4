"""Issue 29: `dask-prep run --help` groups its options and shows an example; each preset has a description."""

from __future__ import annotations

import argparse

from dask_prep.cli.args import RUN_OPTION_GROUPS, build_parser
from dask_prep.config import PRESET_DESCRIPTIONS, PRESETS


def _run_parser() -> argparse.ArgumentParser:
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subcommands.choices["run"]


def test_run_options_are_grouped_and_every_option_is_in_a_group():
    run = _run_parser()
    titles = [title for title, _ in RUN_OPTION_GROUPS]
    assert titles == ["input", "rules", "examples", "output", "cluster", "run control"]
    grouped = {action.dest for group in run._action_groups if group.title in titles for action in group._group_actions}
    everything = {action.dest for action in run._actions if not isinstance(action, argparse._HelpAction)}
    assert everything - grouped == set()
    help_text = run.format_help()
    positions = [help_text.index(f"\n{title}:\n") for title in titles]
    assert positions == sorted(positions), positions


def test_run_help_ends_with_one_usage_example():
    help_text = _run_parser().format_help()
    example = help_text.split("\nexample:\n", 1)[1]
    assert example.lstrip().startswith("dask-prep run ") and "--output-dir" in example
    assert help_text.count("example:") == 1


def test_every_preset_has_a_one_line_description():
    assert set(PRESET_DESCRIPTIONS) == set(PRESETS)
    for name, description in PRESET_DESCRIPTIONS.items():
        assert description and "\n" not in description, name
