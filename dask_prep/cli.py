"""`dask-prep`: a thin command line over `dask_prep.graph`.

Errors a user can act on are printed as one line on stderr with exit code 2 (no
traceback unless --verbose).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from typing import Any

from dask_prep.config import PRESETS, Config, ConfigError, preset

USER_ERROR_EXIT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dask-prep",
        description="Turn a Korean corpus into an entity-coreference `datasets` dataset on Dask.",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline")
    run.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, directories or globs of .jsonl, .jsonl.gz, .jsonl.zst, .parquet",
    )
    run.add_argument("--output-dir", required=True)
    run.add_argument("--preset", default=None, choices=sorted(PRESETS), help="rule preset (default seed-v2)")
    run.add_argument("--config", help="YAML overriding any preset field (see `dask-prep presets show`)")
    run.add_argument("--model", help="tokenizer: hub name or local directory")
    run.add_argument("--seq-len", type=int)
    run.add_argument("--max-entity-freq", type=int, help="examples per entity over the whole corpus")
    run.add_argument("--text-field")
    run.add_argument("--id-field")
    run.add_argument("--max-samples", type=int, help="read only the first N records")
    run.add_argument("--mask-style", choices=["whole", "single"])
    run.add_argument("--pad-to-max-length", action="store_true", default=None)
    run.add_argument(
        "--partition-size", type=int, help="at most N records per partition (default 2000; a small corpus is cut finer)"
    )
    run.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    run.add_argument(
        "--n-workers", type=int, help="LocalCluster worker processes (default: one per 2 cores; see --kiwi-threads)"
    )
    run.add_argument("--threads-per-worker", type=int, default=1)
    run.add_argument(
        "--kiwi-threads",
        type=int,
        help="Kiwi's own threads per worker (default: the cores per LocalCluster worker, at most 2; "
        "1 with --scheduler)",
    )
    run.add_argument("--memory-limit", default="auto", help="per LocalCluster worker, e.g. 4GiB")
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
        help="keep exact duplicates (dedup is on by default)",
    )
    run.add_argument(
        "--no-decisions",
        dest="decisions",
        action="store_false",
        default=None,
        help="do not write the per-document decisions under DIR/decisions/",
    )
    run.add_argument(
        "--full-analysis",
        dest="progressive",
        action="store_false",
        default=None,
        help="analyse every candidate document whole (config analysis.progressive: false); by default a "
        "document is analysed chunk by chunk while a rule can still reject it early (e.g. a pronoun). "
        "Same kept documents and dataset either way",
    )
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2) on malformed lines, damaged or empty files instead of skipping and counting them",
    )

    presets = sub.add_parser("presets", help="list or show rule presets")
    presets_sub = presets.add_subparsers(dest="presets_command", required=True)
    presets_sub.add_parser("list")
    show = presets_sub.add_parser("show")
    show.add_argument("name")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Preset, then --config, then the explicit flags (the most specific wins)."""
    config = preset(args.preset or "seed-v2")
    if args.config:
        config = Config.from_yaml(args.config, base=config if args.preset else None)
    flags = {
        ("tokenize", "model"): args.model,
        ("tokenize", "seq_len"): args.seq_len,
        ("tokenize", "mask_style"): args.mask_style,
        ("tokenize", "pad_to_max_length"): args.pad_to_max_length,
        ("entities", "max_entity_freq"): args.max_entity_freq,
        ("input", "text_field"): args.text_field,
        ("input", "id_field"): args.id_field,
        ("input", "max_samples"): args.max_samples,
        ("input", "partition_size"): args.partition_size,
        ("input", "dedup"): args.dedup,
        ("output", "decisions"): args.decisions,
        ("analysis", "progressive"): args.progressive,
    }
    for (section, name), value in flags.items():
        if value is not None:
            setattr(getattr(config, section), name, value)
    if os.path.isdir(config.tokenize.model):  # a local tokenizer must resolve on every worker
        config.tokenize.model = os.path.abspath(config.tokenize.model)
    config.validate()
    return config


def _run(args: argparse.Namespace) -> int:
    from dask_prep.graph import ClusterOptions, Pipeline, start_client, stop_client
    from dask_prep.report import TqdmProgress, summary_lines
    from dask_prep.report_html import warm_up_plotting, write_html_report

    config = config_from_args(args)
    options = ClusterOptions(
        scheduler=args.scheduler,
        n_workers=args.n_workers,
        threads_per_worker=args.threads_per_worker,
        kiwi_threads=args.kiwi_threads,
        memory_limit=args.memory_limit,
        worker_profile=args.worker_profile,
    )
    pipeline = Pipeline(args.inputs, config, args.output_dir)
    # Bad inputs, output dir or resume state: fail before starting a cluster.
    pipeline.check(overwrite=args.overwrite, resume=args.resume, tokenizer=False)

    def client_start_up() -> None:
        pipeline.tokenizer()  # a bad model fails here, and the cluster is closed again
        if args.quiet or not sys.stderr.isatty():
            import datasets

            datasets.disable_progress_bars()  # no bar lines in CI logs
        warm_up_plotting()

    starting = time.perf_counter()
    client = start_client(options, meanwhile=client_start_up)
    startup_seconds = time.perf_counter() - starting
    closing = None
    try:
        if not args.quiet:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        report = pipeline.run(
            overwrite=args.overwrite,
            resume=args.resume,
            progress=TqdmProgress(disable=True if args.quiet else None),
            strict=args.strict,
            html=False,
            startup_seconds=startup_seconds,
        )
        # The cluster is not needed for report.html (plots, ~2-3 s): it shuts down meanwhile.
        closing = threading.Thread(target=stop_client, args=(client,), name="dask-prep-stop")
        closing.start()
        write_html_report(report, args.output_dir)
    except KeyboardInterrupt:
        print(
            f"dask-prep: interrupted; finished partitions are kept in {args.output_dir}. "
            "Run the same command with --resume to finish.",
            file=sys.stderr,
        )
        return 130
    finally:
        if closing is None:
            stop_client(client)
        else:
            closing.join()
    print("\n".join(summary_lines(report)))
    print(f"dataset: {report['dataset']}")
    print(f"report:  {args.output_dir}/report.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # transformers warns about a missing torch (not needed here) in every process.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    from dask_prep.graph import ClusterError
    from dask_prep.output import OutputDirError
    from dask_prep.reading import InputError
    from dask_prep.tokenization import TokenizerError

    try:
        if args.command == "presets":
            if args.presets_command == "list":
                print("\n".join(sorted(PRESETS)))
            else:
                print(preset(args.name).to_yaml(), end="")
            return 0
        return _run(args)
    except (ConfigError, InputError, OutputDirError, TokenizerError, ClusterError, OSError) as exc:
        if args.verbose:
            raise
        print(f"dask-prep: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:  # before or while starting the cluster: nothing was computed yet
        print("dask-prep: interrupted", file=sys.stderr)
        return 130


def entry_point() -> Any:
    code = main()
    # Everything is written and closed by now. Python's own teardown of the modules loaded
    # (transformers, datasets, distributed, matplotlib) would take another 1-1.3 s
    # (measured), so the command ends here, once logs and output are flushed.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
