"""A whole run of a `graph.Pipeline`: checks, the output directory, the stages, the dataset, the report.

    check ─▶ lock the output dir ─▶ scan (+ manifest) ─▶ dedup ─▶ analyse ─▶ tokenize
          ─▶ dataset (+ card) ─▶ report.json, report.html

`PipelineRun` receives a `graph.Pipeline` (anything with its `Stages`), which builds the
stages' bags; here they are computed in order (`compute.compute_stage`), each stage timed into the report's `seconds`.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import dask
import dask.bag as db

from dask_prep.analysis.isolation import clear_attempts
from dask_prep.config import Config
from dask_prep.coref.kept_analysis import ANALYSIS_FORMAT
from dask_prep.coref.tokenization import ExampleTokenizer
from dask_prep.coref.tokenizer import PortableTokenizer, check_model
from dask_prep.io import storage
from dask_prep.io.input_changes import check_unchanged, input_signatures
from dask_prep.io.inputs import InputFile, PartitionSpec
from dask_prep.io.reading import check_strict
from dask_prep.io.store_lock import LockLostError, StoreLock
from dask_prep.output import fencing
from dask_prep.output.card import DESCRIPTION, card_text
from dask_prep.output.layout import (
    Layout,
    check_not_in_use,
    check_output_dir,
    check_resumable,
    dataset_dir_name,
    hold_output_dir,
    prepare_output_dir,
    read_json,
    versions,
    write_manifest,
)
from dask_prep.pipeline.compute import compute_stage
from dask_prep.pipeline.progress import Progress, follows_partitions
from dask_prep.pipeline.publication import publish_dataset
from dask_prep.pipeline.timing import Stopwatch
from dask_prep.report.build import build_report, write_report
from dask_prep.report.html import write_html_report


def verify_parts(layout: Layout, kind: str, stats: list) -> None:
    """Every `kind` part is what this run recorded for it (checked on the workers; fencing.py)."""
    checks = [(layout.part(kind, s.partition), s.parts[kind]) for s in stats if kind in s.parts]
    if checks:
        db.from_sequence(checks, npartitions=min(len(checks), 64)).starmap(fencing.check_part).compute()


class Stages(Protocol):
    """What a run needs of the pipeline it runs: `graph.Pipeline` is one."""

    inputs: list[str]
    config: Config
    output_dir: str | None
    command: str | None
    damaged: dict[str, str]
    empty_files: list[str]
    duplicate_ids: dict | None
    near_duplicates: dict | None
    identity: fencing.RunIdentity | None
    renamed_summary: dict | None

    @property
    def layout(self) -> Layout: ...

    def files(self) -> list[InputFile]: ...
    def tokenizer(self) -> PortableTokenizer: ...
    def partitions(
        self, partition_size: int | None = None, progress: Progress | None = None
    ) -> list[PartitionSpec]: ...
    def share_storage_options(self) -> None: ...
    def dedup(self, progress: Progress | None = None) -> Any: ...
    def analyse(self, dedup: Any, resume: bool = False, progress_topic: str | None = None) -> tuple: ...
    def cap_from_stats(self, partitions: int) -> tuple[dict, int]: ...
    def tokenize(self, thresholds: Any, resume: bool = False) -> Any: ...


class PipelineRun:
    """One run of a pipeline's stages (`graph.Pipeline`): `check()`, then `run()`."""

    analyse_stage = "analyse"  # stage 1's name in the report's `seconds`

    def __init__(self, pipeline: Stages) -> None:
        self.pipeline = pipeline
        self._lock: StoreLock | None = None

    def check(self, *, overwrite: bool = False, resume: bool = False, tokenizer: bool = True) -> None:
        """Fail fast, before any cluster work, on inputs, tokenizer, output dir or resume.

        With `tokenizer=False` the model is only located here (a path that does not exist, or
        a hub name neither cached nor reachable, fails in seconds); the caller loads the
        tokenizer later (`tokenizer()`), e.g. while a cluster starts.
        """
        self.pipeline.files()
        if tokenizer:
            self.pipeline.tokenizer()
        else:
            check_model(self.pipeline.config.tokenize.model)
        if self.pipeline.output_dir is None:
            return
        storage.check_backend(self.pipeline.output_dir)
        check_not_in_use(self.pipeline.output_dir)
        if resume:
            check_resumable(self.pipeline.layout, self.pipeline.files(), self.pipeline.config)
        else:
            check_output_dir(self.pipeline.output_dir, overwrite=overwrite)

    def run(
        self,
        *,
        overwrite: bool = False,
        resume: bool = False,
        progress: Progress | None = None,
        strict: bool = False,
        html: bool = True,
        startup_seconds: float | None = None,
    ) -> dict:
        """Everything, on the active Dask client or the default scheduler; returns the report.

        With `strict`, bad input (damaged or empty files, malformed lines) raises
        `BadInputError` as soon as it is known: after the scan, or after stage 1.
        With `html=False` report.html is left to the caller (`write_html_report`), e.g. to
        draw it while the cluster shuts down; report.json is always written.
        `startup_seconds`, the caller's time to start or reach the cluster (the CLI passes
        it, its tokenizer check overlapped), goes into the report's `seconds` as `startup`,
        outside `total` (this run's stages).
        """
        progress = progress or Progress()
        self.check(overwrite=overwrite, resume=resume)
        # Held until report.json is written: a second run into this directory fails meanwhile.
        self.pipeline.share_storage_options()
        root = self.pipeline.layout.root
        token = fencing.new_token()  # this run's identity, in the lock and the manifest (fencing.py)
        with hold_output_dir(root, overwrite=overwrite, token=token) as lock:
            fencing.close_the_fence(root)
            self._lock = lock
            identity = fencing.RunIdentity(token)
            if resume:  # it may reuse the partitions of the run it resumes (and of those that one resumed)
                identity = fencing.resuming(token, read_json(self.pipeline.layout.manifest))
            self.pipeline.identity = identity
            try:
                return self._run(overwrite, resume, progress, strict, html, startup_seconds)
            except KeyboardInterrupt:
                if lock is not None and lock.lost:  # the lock could not be renewed: one line, not a Ctrl-C
                    raise LockLostError(lock.lost) from None
                raise
            finally:
                self._lock = None
                self.pipeline.identity = None

    def _run(
        self,
        overwrite: bool,
        resume: bool,
        progress: Progress,
        strict: bool,
        html: bool,
        startup_seconds: float | None,
    ) -> dict:
        layout = self.pipeline.layout
        clock = Stopwatch({} if startup_seconds is None else {"startup": startup_seconds})
        seconds = clock.seconds
        # Before the scan: a file that changes from here to the end of stage 1 stops the run.
        signatures = input_signatures(self.pipeline.files())
        with clock.stage("scan"):
            specs = self._scan(overwrite, resume, progress)
        if strict:
            check_strict(self.pipeline.damaged, self.pipeline.empty_files)

        with clock.stage("dedup"):
            dedup = self._dedup(specs, progress)  # its rejects stay on the cluster

        with clock.stage(self.analyse_stage):
            analysed, (thresholds, distinct_targets) = self._analyse(specs, dedup, resume, progress)
            if strict:
                check_strict({}, [], analysed)
            check_unchanged(self.pipeline.files(), signatures)  # the last stage that reads the input

        with clock.stage("tokenize"):
            progress.begin(f"tokenizing the examples of {len(specs):,} partitions")
            tokenized, _ = compute_stage(
                "tokenize", self.pipeline.tokenize(dask.delayed(thresholds), resume=resume), None, progress
            )

        def report_now() -> dict:
            return build_report(
                analysed,
                tokenized,
                distinct_targets=distinct_targets,
                capped_targets=sum(limit >= 0 for limit in thresholds.values()),
                not_proper_targets=sum(limit < 0 for limit in thresholds.values()),
                model_max_length=self.pipeline.tokenizer().model_max_length,
                duplicate_texts=dedup.duplicate_texts,
                seconds=seconds,
                config=self.pipeline.config.to_dict(),
                inputs=self.pipeline.inputs,
            )

        splits: dict[str, dict] = {}
        with clock.stage("dataset"):
            progress.begin("writing the dataset")
            verify_parts(self.pipeline.layout, "decisions", analysed)
            verify_parts(self.pipeline.layout, "examples", tokenized)  # what the workers publish
            dataset_path = self._write_dataset(specs, report_now, splits, progress)
        seconds["total"] = clock.elapsed()

        report = self._final_report(report_now(), dataset_path, splits, analysed, tokenized)
        write_report(report, layout.root)
        if html:
            write_html_report(report, layout.root)
        return report

    def _scan(self, overwrite: bool, resume: bool, progress: Progress) -> list[PartitionSpec]:
        """The partitions (files scanned on the cluster) and, in a new run, the manifest."""
        layout = self.pipeline.layout
        files = self.pipeline.files()
        progress.begin(f"scanning {len(files):,} file{'s' if len(files) != 1 else ''}")
        if resume:  # the same partitions as the interrupted run, whatever the cluster now
            size = read_json(layout.manifest)["partition_size_used"]
            specs = self.pipeline.partitions(partition_size=size, progress=progress)
        else:
            prepare_output_dir(layout.root, overwrite=overwrite)
            specs = self.pipeline.partitions(progress=progress)
            write_manifest(
                layout,
                files,
                self.pipeline.config,
                partition_size_used=max((s.records for s in specs), default=0),
                partitions=len(specs),
                analysis_format=ANALYSIS_FORMAT,
            )
        fencing.record_identity(layout, self.pipeline.identity)
        return specs

    def _dedup(self, specs: list[PartitionSpec], progress: Progress) -> Any:
        """Dedup on the cluster (`Pipeline.dedup`): a `dedup_graph.Dedup`, its rejects left there."""
        config = self.pipeline.config
        if config.input.dedup:
            kinds = "exact and near" if config.dedup.near.enabled else "exact"
            progress.begin(f"finding duplicates ({kinds}) among {sum(s.records for s in specs):,} documents")
        return self.pipeline.dedup(progress)

    def _analyse(self, specs: list[PartitionSpec], dedup: Any, resume: bool, progress: Progress) -> tuple[list, Any]:
        """Stage 1: (each partition's stats, (cap thresholds, distinct targets))."""
        clear_attempts(self.pipeline.layout.work)  # markers of an interrupted run's partitions are not crashes
        documents = sum(s.records for s in specs)
        progress.begin(f"analysing {documents:,} documents in {len(specs):,} partitions")
        topic = f"dask-prep-progress-{uuid.uuid4().hex}" if follows_partitions(progress) else None
        stats_bag, cap_item = self.pipeline.analyse(dedup, resume=resume, progress_topic=topic)
        return compute_stage(
            "analyse",
            stats_bag,
            cap_item,
            progress,
            topic=topic,
            documents=documents,
            redo_item=lambda: self.pipeline.cap_from_stats(len(specs)),
        )

    def _write_dataset(
        self, specs: list[PartitionSpec], report_now: Callable[[], dict], splits: dict, progress: Progress
    ) -> str:
        """The published dataset and its card, written by the workers (publication.py); the client
        commits the small files last. `splits` receives the split sizes."""
        config = self.pipeline.config
        # Without partitions (empty input) the dataset still gets the output's columns.
        schema = None if specs else ExampleTokenizer(config.tokenize, self.pipeline.tokenizer()).schema
        return publish_dataset(
            self.pipeline.layout,
            [s.index for s in specs],
            config.tokenize.seq_len,
            lock=self._lock,
            schema=schema,
            validation_fraction=config.output.validation_fraction,
            description=DESCRIPTION,
            card=functools.partial(self._card, report_now(), splits),
            progress=progress,
        )

    def _final_report(self, report: dict, dataset_path: str, splits: dict, analysed: list, tokenized: list) -> dict:
        """The report with what only the run knows: the dataset, its splits, the scan's findings."""
        report["dataset"] = dataset_path
        report["splits"] = splits
        self._add_to_report(report)
        # --resume: finished partitions whose parts did not match their record, computed again.
        report["partitions"]["replaced_on_resume"] = [
            {"stage": stage, "partition": s.partition, "why": s.replaced_on_resume}
            for stage, stats in (("analyse", analysed), ("tokenize", tokenized))
            for s in stats
            if s.replaced_on_resume
        ]
        return report

    def _add_to_report(self, report: dict) -> None:
        """What the report says beside the stages' counts: where the inputs were damaged, empty or repeated."""
        report["damaged_files"].update(self.pipeline.damaged)
        report["empty_files"] = self.pipeline.empty_files
        report["duplicate_ids"] = self.pipeline.duplicate_ids
        report["near_duplicates"] = self.pipeline.near_duplicates  # clusters, sizes, documents removed (None: off)
        report["renamed_ids"] = self.pipeline.renamed_summary

    def _card(self, report: dict, splits_out: dict, features: Any, splits: dict[str, dict]) -> str:
        """The dataset's README.md; `splits_out` receives the split sizes for the report."""
        splits_out.update(splits)
        pipeline = self.pipeline
        tokenizer = pipeline.tokenizer()
        return card_text(
            features=features,
            splits=splits,
            name=os.path.basename(dataset_dir_name(pipeline.config.tokenize.seq_len)),
            command=pipeline.command or pipeline.api_call(),
            config=pipeline.config.to_dict(),
            counts=report,
            tokenizer={
                "model": pipeline.config.tokenize.model,
                "class": tokenizer.class_name,
                "unk_token": tokenizer.unk_token,
                "vocab_size": tokenizer.vocab_size,
                "local": os.path.isdir(os.path.expanduser(pipeline.config.tokenize.model)),
            },
            versions=versions(),
        )
