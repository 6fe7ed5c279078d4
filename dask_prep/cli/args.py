"""The arguments of `dask-prep`: its parser, and the `Config` that a run's flags give."""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any

from dask_prep.config import PRESETS, Config, preset


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; options whose default comes from the preset say it in their help."""

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
    """--verbose and --quiet, accepted before or after the subcommand.

    In a subcommand their default is SUPPRESS, so an absent flag there does not undo the
    same flag given before the subcommand.
    """
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if in_subcommand else False
    common.add_argument(
        "--verbose", action="store_true", default=default, help="show tracebacks and debug logs (default: off)"
    )
    common.add_argument(
        "--quiet", action="store_true", default=default, help="no progress bars and no dashboard line (default: off)"
    )
    return common


def _config_default(section: str, name: str) -> Any:
    return getattr(getattr(preset("seed-v2"), section), name)


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

    run = sub.add_parser("run", help="run the pipeline", formatter_class=HelpFormatter, parents=in_sub)
    run.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, directories or globs of .jsonl, .jsonl.gz, .jsonl.zst, .parquet",
    )
    run.add_argument(
        "--output-dir",
        required=True,
        metavar="DIR",
        help="where the dataset, report and work files go: a directory or an fsspec URL "
        "(s3://bucket/prefix, gs://..., abfs://..., file://...) (required)",
    )
    run.add_argument(
        "--validation-fraction",
        type=float,
        help="put this share of documents (by a stable hash of doc_id) in a `validation` split; "
        "the output is then a DatasetDict of train and validation (default: none, one Dataset)",
    )
    run.add_argument(
        "--storage-options",
        type=_storage_options,
        metavar="JSON",
        help='fsspec storage options for the input and output URLs, e.g. \'{"endpoint_url": '
        "\"http://127.0.0.1:9000\"}'; they reach every worker (the backends' own configuration, such as "
        "the AWS_* variables, applies too) (default: none)",
    )
    run.add_argument("--preset", default=None, choices=sorted(PRESETS), help="rule preset (default: seed-v2)")
    run.add_argument(
        "--config",
        metavar="YAML",
        help="YAML overriding any preset field (see `dask-prep presets show`; default: none)",
    )
    run.add_argument(
        "--model",
        metavar="NAME_OR_DIR",
        help="tokenizer: hub name or local directory; a name with '/' whose parent directory exists, or "
        f"starting with '.' or '~', is a path (default: {_config_default('tokenize', 'model')})",
    )
    run.add_argument(
        "--seq-len",
        type=int,
        metavar="N",
        help=f"maximum example length in tokens (default: {_config_default('tokenize', 'seq_len')})",
    )
    run.add_argument(
        "--max-entity-freq",
        type=int,
        metavar="N",
        help=f"examples per entity over the whole corpus (default: {_config_default('entities', 'max_entity_freq')})",
    )
    run.add_argument(
        "--text-field",
        metavar="FIELD",
        help=f"JSON field of the text (default: {_config_default('input', 'text_field')})",
    )
    run.add_argument(
        "--id-field",
        metavar="FIELD",
        help=f"JSON field of the document id; without it ids are file:line "
        f"(default: {_config_default('input', 'id_field')})",
    )
    run.add_argument("--max-samples", type=int, metavar="N", help="read only the first N records (default: all)")
    run.add_argument(
        "--mask-style",
        choices=["whole", "single"],
        help="whole: k masks for a k-token target; single: one mask "
        f"(default: {_config_default('tokenize', 'mask_style')})",
    )
    run.add_argument(
        "--pad-to-max-length",
        action="store_true",
        default=None,
        help="pad every example to --seq-len, the old layout (default: off)",
    )
    run.add_argument(
        "--partition-size",
        type=int,
        metavar="N",
        help=f"at most N records per partition (default: {_config_default('input', 'partition_size')}; "
        "a small corpus is cut finer)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
        help="address of a running Dask scheduler, e.g. tcp://host:8786 "
        "(default: $DASK_SCHEDULER_ADDRESS if set, else a new LocalCluster)",
    )
    run.add_argument(
        "--n-workers",
        type=int,
        metavar="N",
        help="LocalCluster worker processes (default: one per 2 cores; see --kiwi-threads)",
    )
    run.add_argument(
        "--threads-per-worker", type=int, default=1, metavar="T", help="task threads per LocalCluster worker"
    )
    run.add_argument(
        "--kiwi-threads",
        type=int,
        metavar="K",
        help="Kiwi's own threads per worker (default: the cores per LocalCluster worker: 2, or with "
        "--n-workers the cores left to each; 1 with --scheduler)",
    )
    run.add_argument("--memory-limit", default="auto", metavar="SIZE", help="per LocalCluster worker, e.g. 4GiB")
    run.add_argument(
        "--dashboard-address",
        default=None,
        help="where a LocalCluster's dashboard listens (default 127.0.0.1:8787, this host only; "
        "e.g. 0.0.0.0:8787 to serve it to other hosts, which shows logs and task data)",
    )
    run.add_argument(
        "--analysis-timeout",
        type=float,
        help="seconds one document's Kiwi analysis may take before it is rejected as analysis_timeout (default 300)",
    )
    run.add_argument(
        "--worker-profile",
        action="store_true",
        help="keep distributed's statistical profiler on in LocalCluster workers (the dashboard's Profile "
        "page; off by default: it slows a worker by a few percent)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run in --output-dir")
    run.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        default=None,
        help="keep exact duplicates (default: dedup is on)",
    )
    run.add_argument(
        "--no-decisions",
        dest="decisions",
        action="store_false",
        default=None,
        help="do not write the per-document decisions under DIR/decisions/ (default: written)",
    )
    run.add_argument(
        "--full-analysis",
        dest="progressive",
        action="store_false",
        default=None,
        help="analyse every candidate document whole (config analysis.progressive: false); by default a "
        "document is analysed chunk by chunk while a rule can still reject it early (e.g. a pronoun). "
        "Same kept documents and dataset either way (default: progressive where a rule allows it)",
    )
    run.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) on malformed lines, damaged or empty files instead of skipping and counting them",
    )

    _add_derive(sub, run, in_sub)

    presets = sub.add_parser("presets", help="list or show rule presets", formatter_class=HelpFormatter, parents=in_sub)
    presets_sub = presets.add_subparsers(dest="presets_command", required=True, metavar="{list,show}")
    presets_sub.add_parser("list", help="the preset names", formatter_class=HelpFormatter, parents=in_sub)
    show = presets_sub.add_parser(
        "show", help="a preset as YAML that --config accepts", formatter_class=HelpFormatter, parents=in_sub
    )
    show.add_argument("name", metavar="NAME", help=f"one of: {', '.join(sorted(PRESETS))}")
    return parser


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


def _add_derive(sub: Any, run: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    derive = sub.add_parser(
        "derive",
        help="another dataset from a finished run's analysis, without Kiwi",
        description="Make another dataset from the analysis a finished `dask-prep run` left in RUN_DIR: "
        "another tokenizer, --seq-len, mask style, cap, split or entities.* config, without Kiwi. "
        "A change that needs Kiwi again (rules, inputs, dedup) is refused.",
        formatter_class=HelpFormatter,
        parents=parents,
    )
    derive.add_argument("run_dir", metavar="RUN_DIR", help="the --output-dir of a finished run (a directory or URL)")
    for action in run._actions:
        if action.dest in DERIVE_OPTIONS:
            derive._add_action(action)  # the very option of `run`, as argparse's `parents` shares them


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
        ("analysis", "progressive"): flag("progressive"),
    }
    for (section, name), value in flags.items():
        if value is not None:
            setattr(getattr(config, section), name, value)
    model_dir = os.path.expanduser(config.tokenize.model)
    if os.path.isdir(model_dir):  # a local tokenizer must resolve on every worker
        config.tokenize.model = os.path.abspath(model_dir)
    config.validate()
    return config
