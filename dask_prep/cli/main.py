"""`dask-prep`: a thin command line over `dask_prep.pipeline.graph` (its arguments: `dask_prep.cli.args`).

Errors a user can act on are printed as one line on stderr with exit code 2 (no
traceback unless --verbose).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
import time
from typing import Any

from dask_prep.cli.args import build_parser, config_from_args
from dask_prep.config import PRESET_DESCRIPTIONS, PRESETS, ConfigError, preset

USER_ERROR_EXIT = 2


def _say(args: argparse.Namespace, step: str) -> None:
    """A line naming the step that begins, where the bars are shown (a terminal, without --quiet)."""
    if not args.quiet and sys.stderr.isatty():
        print(f"dask-prep: {step}", file=sys.stderr, flush=True)


def _configure_logging(verbose: bool) -> None:
    """Our loggers to stderr; distributed's keep their own handler and levels.

    distributed gives its loggers a handler of their own (which a LocalCluster keeps at
    WARNING) unless the root logger has one already: then its INFO lines, such as a closing
    scheduler's, would reach the root's handler. So its set-up comes first (when imported;
    once only).
    """
    import dask
    from distributed.config import initialize_logging

    initialize_logging(dask.config.config)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


def _cluster_step(options: Any) -> str:
    if options.scheduler:
        return f"connecting to the Dask scheduler at {options.scheduler}"
    workers, kiwi_threads = options.layout()
    if not options.kiwi:  # derive: nothing to analyse
        return f"starting a local Dask cluster: {workers} worker process{'es' if workers > 1 else ''}"
    return (
        f"starting a local Dask cluster: {workers} worker process{'es' if workers > 1 else ''}, "
        f"Kiwi on {kiwi_threads} thread{'s' if kiwi_threads > 1 else ''} in each"
    )


def _run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _say(args, f"checking the input{'s' if len(args.inputs) > 1 else ''}, the model and the output directory")
    _configure_logging(args.verbose)
    from dask_prep.pipeline.graph import Pipeline

    pipeline = Pipeline(args.inputs, config, args.output_dir, storage_options=args.storage_options)
    return _execute(args, pipeline, _cluster_options(args))


def _derive(args: argparse.Namespace) -> int:
    _say(args, f"checking {args.run_dir}'s analysis, the model and the output directory")
    _configure_logging(args.verbose)
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
    from dask_prep.pipeline.cluster import (
        lost_scheduler_error,
        quiet_cluster_logs,
        scheduler_lost,
        start_client,
        stop_client,
    )
    from dask_prep.report.build import TqdmProgress
    from dask_prep.report.html import write_html_report
    from dask_prep.report.plots import warm_up_plotting

    # `dask-prep --quiet run …` too: global flags may come before the command.
    pipeline.command = shlex.join(["dask-prep", *sys.argv[1:]]) if args.command in sys.argv[1:] else None
    # Bad inputs, output dir or resume state: fail before starting a cluster.
    pipeline.check(overwrite=args.overwrite, resume=args.resume, tokenizer=False)
    if pipeline.repeated_inputs:
        print(
            f"dask-prep: note: {len(pipeline.repeated_inputs)} input file(s) given more than once are read once: "
            + ", ".join(pipeline.repeated_inputs[:3])
            + (f" and {len(pipeline.repeated_inputs) - 3} more" if len(pipeline.repeated_inputs) > 3 else ""),
            file=sys.stderr,
        )

    def client_start_up() -> None:
        pipeline.tokenizer()  # a bad model fails here, and the cluster is closed again
        import datasets

        # Its bars (saving the dataset) would be unlabelled extra bars after the stages' own.
        datasets.disable_progress_bars()
        warm_up_plotting()

    _say(args, _cluster_step(options))
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
    except Exception as exc:
        if not args.verbose:
            quiet_cluster_logs()
        if not scheduler_lost(client, exc):
            raise
        raise lost_scheduler_error(args.scheduler, pipeline.output_dir) from exc
    finally:
        if closing is None:
            stop_client(client)
        else:
            closing.join()
    _print_summary(report, args.resume, pipeline.output_dir)
    return 0


def _cluster_options(args: argparse.Namespace) -> Any:
    from dask_prep.pipeline.cluster import ClusterOptions

    options = ClusterOptions(
        scheduler=args.scheduler,
        n_workers=args.n_workers,
        threads_per_worker=args.threads_per_worker,
        kiwi_threads=getattr(args, "kiwi_threads", None),  # derive has none
        memory_limit=args.memory_limit,
        worker_profile=args.worker_profile,
    )
    if args.dashboard_address is not None:
        options.dashboard_address = args.dashboard_address
    options.check()  # before any cluster starts
    return options


def _print_summary(report: dict, resumed: bool, output_dir: str) -> None:
    from dask_prep.report.build import summary_lines

    print("\n".join(summary_lines(report, resumed=resumed)))
    print(f"dataset: {report['dataset']}")
    if report["examples"]["written"] == 0:
        print(
            "dask-prep: no examples were written (no document gave one: see report.json's rejected and "
            "malformed counts); the dataset is empty, with the output's columns"
        )
    print(f"report:  {output_dir}/report.json")
    for warning in report.get("warnings", []):
        print(f"dask-prep: warning: {warning}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # transformers warns about a missing torch (not needed here) in every process.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not args.verbose:  # huggingface_hub's retry warnings: the one error line says it all
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    if not args.verbose:
        signal.signal(signal.SIGINT, _interrupted_quietly)
    try:
        if args.command == "presets":
            if args.presets_command == "list":
                print("\n".join(f"{name:<12} {PRESET_DESCRIPTIONS[name]}" for name in sorted(PRESETS)))
            else:
                print(preset(args.name).to_yaml(), end="")
            return 0
        return _derive(args) if args.command == "derive" else _run(args)
    except Exception as exc:
        message = _user_error_message(exc)
        if message is None or args.verbose:
            raise
        print(f"dask-prep: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:  # before or while starting the cluster: nothing was computed yet
        print("dask-prep: interrupted", file=sys.stderr)
        return 130


def _interrupted_quietly(signum: int, frame: Any) -> None:
    """Ctrl-C: the one line the caller prints says it all (`--verbose` keeps the logs).

    The cluster is then closed with tasks still running, and distributed logs what that
    cuts off (cancelled tasks, a worker killed after its grace period) as warnings and errors.
    """
    logging.disable(logging.ERROR)
    raise KeyboardInterrupt


def _user_error_message(exc: Exception) -> str | None:
    """The one line for an error a user can act on; None for a bug.

    The error classes are imported here, once one is raised: `dask-prep` prints its first
    line before importing Dask and distributed (which their modules do).
    """
    from dask_prep.coref.tokenizer import TokenizerError
    from dask_prep.io.reading import InputError
    from dask_prep.output.layout import OutputDirError
    from dask_prep.pipeline.cluster import ClusterError
    from dask_prep.pipeline.derive_partition import DeriveError

    if isinstance(exc, (ConfigError, InputError, OutputDirError, TokenizerError, ClusterError, DeriveError, OSError)):
        return str(exc)
    # A store's client library (botocore, aiohttp, ...) refused or could not connect, or a
    # worker lacks the backend of a URL: one line, like any error a user can act on.
    return _store_error_message(exc)


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
