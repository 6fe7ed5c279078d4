"""The arguments of `dask-prep`: its parser, and the `Config` that a run's flags give."""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any

from dask_prep.cli.derive_args import add_derive
from dask_prep.config import PRESETS, Config, preset


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default; options whose default comes from the preset say it in their help.

    The description and epilog (a usage example) keep their own line breaks.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if "default" in help_text or not action.option_strings or action.default is argparse.SUPPRESS:
            return help_text
        if action.default is False:  # a flag
            return f"{help_text} (default: off)"
        if action.default is None:
            return help_text
        return f"{help_text} (default: %(default)s)"


def _common_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """--verbose and --quiet, accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_options(common, in_subcommand=in_subcommand)
    return common


def _verbosity_options(group: Any, *, in_subcommand: bool) -> None:
    """--verbose and --quiet. In a subcommand their default is SUPPRESS, so an absent flag
    there does not undo the same flag given before the subcommand."""
    default = argparse.SUPPRESS if in_subcommand else False
    group.add_argument(
        "--verbose", action="store_true", default=default, help="show tracebacks and debug logs (default: off)"
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bars, step lines or dashboard line (default: off)",
    )


def _config_default(section: str, name: str) -> Any:
    return getattr(getattr(preset("seed-v2"), section), name)


def _input_options(group: Any) -> None:
    """What to read and how it is cut into partitions."""
    group.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, directories or globs of .jsonl, .jsonl.gz, .jsonl.zst, .parquet",
    )
    group.add_argument(
        "--text-field",
        metavar="FIELD",
        help=f"JSON field of the text (default: {_config_default('input', 'text_field')})",
    )
    group.add_argument(
        "--id-field",
        metavar="FIELD",
        help=f"JSON field of the document id; without it ids are file:line "
        f"(default: {_config_default('input', 'id_field')})",
    )
    group.add_argument("--max-samples", type=int, metavar="N", help="read only the first N records (default: all)")
    group.add_argument(
        "--partition-size",
        type=int,
        metavar="N",
        help=f"at most N records per partition (default: {_config_default('input', 'partition_size')}; "
        "a small corpus is cut finer)",
    )
    group.add_argument(
        "--storage-options",
        type=_storage_options,
        metavar="JSON",
        help='fsspec storage options for the input and output URLs, e.g. \'{"endpoint_url": '
        "\"http://127.0.0.1:9000\"}'; they reach every worker (the backends' own configuration, such as "
        "the AWS_* variables, applies too) (default: none)",
    )


def _rules_options(group: Any) -> None:
    """Which documents are kept."""
    group.add_argument("--preset", default=None, choices=sorted(PRESETS), help="rule preset (default: seed-v2)")
    group.add_argument(
        "--config",
        metavar="YAML",
        help="YAML overriding any preset field (see `dask-prep presets show`; default: none)",
    )
    group.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        default=None,
        help="keep exact duplicates (default: dedup is on)",
    )
    group.add_argument(
        "--no-near-dedup",
        dest="near_dedup",
        action="store_false",
        default=None,
        help="keep near-duplicates (MinHash LSH, config dedup.near; default: on; --no-dedup turns both off)",
    )
    group.add_argument(
        "--full-analysis",
        dest="progressive",
        action="store_false",
        default=None,
        help="analyse every candidate document whole (config analysis.progressive: false); by default a "
        "document is analysed chunk by chunk while a rule can still reject it early (e.g. a pronoun). "
        "Same kept documents and dataset either way (default: progressive where a rule allows it)",
    )
    group.add_argument(
        "--analysis-timeout",
        type=float,
        metavar="S",
        help="seconds one document's Kiwi analysis may take before it is rejected as analysis_timeout (default 300)",
    )


def _examples_options(group: Any) -> None:
    """The tokenizer and the examples it makes."""
    group.add_argument(
        "--model",
        metavar="NAME_OR_DIR",
        help="tokenizer: hub name or local directory; a name with '/' whose parent directory exists, or "
        f"starting with '.' or '~', is a path (default: {_config_default('tokenize', 'model')})",
    )
    group.add_argument(
        "--seq-len",
        type=int,
        metavar="N",
        help=f"maximum example length in tokens (default: {_config_default('tokenize', 'seq_len')})",
    )
    group.add_argument(
        "--max-entity-freq",
        type=int,
        metavar="N",
        help=f"examples per entity over the whole corpus (default: {_config_default('entities', 'max_entity_freq')})",
    )
    group.add_argument(
        "--mask-style",
        choices=["whole", "single"],
        help="whole: k masks for a k-token target; single: one mask "
        f"(default: {_config_default('tokenize', 'mask_style')})",
    )
    group.add_argument(
        "--pad-to-max-length",
        action="store_true",
        default=None,
        help="pad every example to --seq-len, the old layout (default: off)",
    )


def _output_options(group: Any) -> None:
    """Where and what is written."""
    group.add_argument(
        "--output-dir",
        required=True,
        metavar="DIR",
        help="where the dataset, report and work files go: a directory or an fsspec URL "
        "(s3://bucket/prefix, gs://..., abfs://..., file://...) (required)",
    )
    group.add_argument(
        "--validation-fraction",
        type=float,
        metavar="F",
        help="put this share of documents (by a stable hash of doc_id) in a `validation` split; "
        "the output is then a DatasetDict of train and validation (default: none, one Dataset)",
    )
    group.add_argument(
        "--source", help="the source corpus, named on the dataset card (config output.source; default: none named)"
    )
    group.add_argument(
        "--license",
        help="the dataset's licence for its card, e.g. cc-by-sa-3.0 (config output.license; default: none named)",
    )
    group.add_argument(
        "--no-decisions",
        dest="decisions",
        action="store_false",
        default=None,
        help="do not write the per-document decisions under DIR/decisions/ (default: written)",
    )
    group.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")


def _cluster_options(group: Any) -> None:
    """Where to compute (none of this changes the dataset)."""
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(default: $DASK_SCHEDULER_ADDRESS if set, else a new LocalCluster)",
    )
    group.add_argument(
        "--n-workers",
        type=int,
        metavar="N",
        help="LocalCluster worker processes (default: one per 2 cores; see --kiwi-threads)",
    )
    group.add_argument(
        "--threads-per-worker", type=int, default=1, metavar="T", help="task threads per LocalCluster worker"
    )
    group.add_argument(
        "--kiwi-threads",
        type=int,
        metavar="K",
        help="Kiwi's own threads per worker (default: the cores per LocalCluster worker: 2, or with "
        "--n-workers the cores left to each; 1 with --scheduler)",
    )
    group.add_argument("--memory-limit", default="auto", metavar="SIZE", help="per LocalCluster worker, e.g. 4GiB")
    group.add_argument(
        "--dashboard-address",
        default=None,
        metavar="ADDRESS",
        help="where a LocalCluster's dashboard listens (default 127.0.0.1:8787, this host only; "
        "e.g. 0.0.0.0:8787 to serve it to other hosts, which shows logs and task data)",
    )
    group.add_argument(
        "--worker-profile",
        action="store_true",
        help="keep distributed's statistical profiler on in LocalCluster workers (the dashboard's Profile "
        "page; off by default: it slows a worker by a few percent)",
    )


def _run_control_options(group: Any) -> None:
    """Resuming, strictness and what is shown."""
    _verbosity_options(group, in_subcommand=True)
    group.add_argument("--resume", action="store_true", help="continue an interrupted run in --output-dir")
    group.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) on malformed lines, damaged or empty files instead of skipping and counting them",
    )


RUN_EXAMPLE = """example:
  dask-prep run /data/hplt/kor_Hang/*.jsonl.zst --model kakaobank/kf-deberta-base \\
      --seq-len 2048 --max-entity-freq 1000 --output-dir ./prepared_datasets
"""

# `dask-prep run --help` shows its options in these groups, in this order.
RUN_OPTION_GROUPS = [
    ("input", _input_options),
    ("rules", _rules_options),
    ("examples", _examples_options),
    ("output", _output_options),
    ("cluster", _cluster_options),
    ("run control", _run_control_options),
]


def build_parser() -> argparse.ArgumentParser:
    """The parser of `dask-prep` and its subcommands `run`, `derive` and `presets`."""
    from dask_prep import __version__

    parser = argparse.ArgumentParser(
        prog="dask-prep",
        description="Turn a Korean corpus into an entity-coreference `datasets` dataset on Dask.",
        formatter_class=HelpFormatter,
        parents=[_common_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,derive,presets}", title="commands")
    in_sub = [_common_options(in_subcommand=True)]

    run = sub.add_parser("run", help="run the pipeline", formatter_class=HelpFormatter, epilog=RUN_EXAMPLE)
    for title, add_options in RUN_OPTION_GROUPS:
        add_options(run.add_argument_group(title))

    add_derive(sub, run, in_sub)

    presets = sub.add_parser("presets", help="list or show rule presets", formatter_class=HelpFormatter, parents=in_sub)
    presets_sub = presets.add_subparsers(dest="presets_command", required=True, metavar="{list,show}")
    presets_sub.add_parser(
        "list", help="the preset names, each with a one-line description", formatter_class=HelpFormatter, parents=in_sub
    )
    show = presets_sub.add_parser(
        "show", help="a preset as YAML that --config accepts", formatter_class=HelpFormatter, parents=in_sub
    )
    show.add_argument("name", metavar="NAME", help=f"one of: {', '.join(sorted(PRESETS))}")
    return parser


def _storage_options(text: str) -> dict:
    import json

    try:
        options = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise argparse.ArgumentTypeError("give a JSON object, e.g. '{\"anon\": false}'")
    return options


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Preset (or `base`: `derive`'s run), then --config, then the explicit flags (the most specific wins)."""
    if base is not None:
        config = Config.from_yaml(args.config, base=base) if args.config else copy.deepcopy(base)
    else:
        config = preset(args.preset or "seed-v2")
        if args.config:
            config = Config.from_yaml(args.config, base=config if args.preset else None)

    def flag(name: str) -> Any:  # `derive` has only some of `run`'s flags
        return getattr(args, name, None)

    flags = {
        ("tokenize", "model"): flag("model"),
        ("tokenize", "seq_len"): flag("seq_len"),
        ("tokenize", "mask_style"): flag("mask_style"),
        ("tokenize", "pad_to_max_length"): flag("pad_to_max_length"),
        ("entities", "max_entity_freq"): flag("max_entity_freq"),
        ("input", "text_field"): flag("text_field"),
        ("input", "id_field"): flag("id_field"),
        ("input", "max_samples"): flag("max_samples"),
        ("input", "partition_size"): flag("partition_size"),
        ("input", "dedup"): flag("dedup"),
        ("input", "analysis_timeout"): flag("analysis_timeout"),
        ("output", "decisions"): flag("decisions"),
        ("output", "validation_fraction"): flag("validation_fraction"),
        ("output", "source"): flag("source"),
        ("output", "license"): flag("license"),
        ("analysis", "progressive"): flag("progressive"),
    }
    for (section, name), value in flags.items():
        if value is not None:
            setattr(getattr(config, section), name, value)
    if flag("near_dedup") is False or flag("dedup") is False:
        config.dedup.near.enabled = False
    model_dir = os.path.expanduser(config.tokenize.model)
    if os.path.isdir(model_dir):  # a local tokenizer must resolve on every worker
        config.tokenize.model = os.path.abspath(model_dir)
    config.validate()
    return config
