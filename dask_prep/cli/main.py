"""`dask-prep`: a thin command line over `dask_prep.pipeline.graph` (its arguments: `dask_prep.cli.args`).

Errors a user can act on are printed as one line on stderr with exit code 2 (no
traceback unless --verbose).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import threading
import time
from typing import Any

from dask_prep.cli.args import build_parser, config_from_args
from dask_prep.config import PRESETS, ConfigError, preset

USER_ERROR_EXIT = 2


def _cluster_options(args: argparse.Namespace) -> Any:
    from dask_prep.pipeline.cluster import ClusterOptions

    options = ClusterOptions(
        scheduler=args.scheduler,
        n_workers=args.n_workers,
        threads_per_worker=args.threads_per_worker,
        kiwi_threads=getattr(args, "kiwi_threads", None),
        memory_limit=args.memory_limit,
        worker_profile=args.worker_profile,
    )
    if args.dashboard_address is not None:
        options.dashboard_address = args.dashboard_address
    return options


def _run(args: argparse.Namespace) -> int:
    from dask_prep.pipeline.graph import Pipeline

    pipeline = Pipeline(args.inputs, config_from_args(args), args.output_dir, storage_options=args.storage_options)
    return _execute(args, pipeline, _cluster_options(args))


def _derive(args: argparse.Namespace) -> int:
    from dask_prep.io import storage
    from dask_prep.pipeline.derive import DerivedPipeline, open_source

    storage.configure(args.storage_options, [args.run_dir])
    source = open_source(args.run_dir)
    config = config_from_args(args, base=source.config)
    pipeline = DerivedPipeline(source, config, args.output_dir, storage_options=args.storage_options)
    options = _cluster_options(args)
    options.kiwi = False  # nothing to analyse
    return _execute(args, pipeline, options)


def _execute(args: argparse.Namespace, pipeline: Any, options: Any) -> int:
    """Check, start the cluster, run `pipeline` (a run's or a derive's), report: the CLI's exit code."""
    from dask_prep.pipeline.cluster import start_client, stop_client
    from dask_prep.report.build import TqdmProgress, summary_lines
    from dask_prep.report.html import write_html_report
    from dask_prep.report.plots import warm_up_plotting

    pipeline.command = shlex.join(["dask-prep", *sys.argv[1:]]) if sys.argv[1:2] == [args.command] else None
    # Bad inputs, output dir or resume state: fail before starting a cluster.
    pipeline.check(overwrite=args.overwrite, resume=args.resume, tokenizer=False)

    def client_start_up() -> None:
        pipeline.tokenizer()  # a bad model fails here, and the cluster is closed again
        import datasets

        # Its bars (saving the dataset) would be unlabelled extra bars after the stages' own.
        datasets.disable_progress_bars()
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
            strict=getattr(args, "strict", False),
            html=False,
            startup_seconds=startup_seconds,
        )
        # The cluster is not needed for report.html (drawing its plots takes seconds): it shuts down meanwhile.
        closing = threading.Thread(target=stop_client, args=(client,), name="dask-prep-stop")
        closing.start()
        write_html_report(report, pipeline.output_dir)
    except KeyboardInterrupt:
        print(
            f"dask-prep: interrupted; finished partitions are kept in {pipeline.output_dir}. "
            "Run the same command with --resume to finish.",
            file=sys.stderr,
        )
        return 130
    finally:
        if closing is None:
            stop_client(client)
        else:
            closing.join()
    print("\n".join(summary_lines(report, resumed=args.resume)))
    print(f"dataset: {report['dataset']}")
    if report["examples"]["written"] == 0:
        print(
            "dask-prep: no examples were written (no document gave one: see report.json's rejected and "
            "malformed counts); the dataset is empty, with the output's columns"
        )
    print(f"report:  {pipeline.output_dir}/report.json")
    for warning in report.get("warnings", []):
        print(f"dask-prep: warning: {warning}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # transformers warns about a missing torch (not needed here) in every process.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not args.verbose:  # huggingface_hub's retry warnings: the one error line says it all
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    from dask_prep.coref.tokenizer import TokenizerError
    from dask_prep.io.reading import InputError
    from dask_prep.output.layout import OutputDirError
    from dask_prep.pipeline.cluster import ClusterError
    from dask_prep.pipeline.derive_partition import DeriveError

    try:
        if args.command == "presets":
            if args.presets_command == "list":
                print("\n".join(sorted(PRESETS)))
            else:
                print(preset(args.name).to_yaml(), end="")
            return 0
        return _derive(args) if args.command == "derive" else _run(args)
    except (ConfigError, InputError, OutputDirError, TokenizerError, ClusterError, DeriveError, OSError) as exc:
        if args.verbose:
            raise
        print(f"dask-prep: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    except Exception as exc:
        # A store's client library (botocore, aiohttp, ...) refused or could not connect, or a
        # worker lacks the backend of a URL: one line, like any error a user can act on.
        message = _store_error_message(exc)
        if message is None or args.verbose:
            raise
        print(f"dask-prep: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:  # before or while starting the cluster: nothing was computed yet
        print("dask-prep: interrupted", file=sys.stderr)
        return 130


def _store_error_message(exc: BaseException) -> str | None:
    from dask_prep.io import storage

    if storage.is_store_error(exc):
        return f"the store failed: {storage.describe(exc)}"
    if isinstance(exc, ImportError) and str(exc).startswith("Install "):
        return f"{exc} (on a worker: install the same backend on every worker host)"
    return None


def entry_point() -> Any:
    code = main()
    # Everything is written and closed by now. Python's own teardown of the modules loaded
    # (transformers, datasets, distributed, matplotlib) would add a measurable wait to every
    # run (benchmarks/HISTORY.md), so the command ends here, once logs and output are flushed.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
