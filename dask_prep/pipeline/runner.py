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
from typing import Any, Protocol

import dask

from dask_prep.analysis.isolation import clear_attempts
from dask_prep.config import Config
from dask_prep.coref.kept_analysis import ANALYSIS_FORMAT
from dask_prep.coref.tokenization import ExampleTokenizer
from dask_prep.coref.tokenizer import PortableTokenizer, check_model
from dask_prep.io import storage
from dask_prep.io.inputs import InputFile, PartitionSpec
from dask_prep.io.reading import check_strict
from dask_prep.io.store_lock import StoreLock
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
from dask_prep.output.publish import write_dataset
from dask_prep.pipeline.compute import compute_stage
from dask_prep.pipeline.progress import Progress, follows_partitions
from dask_prep.pipeline.timing import Stopwatch
from dask_prep.report.build import build_report, write_report
from dask_prep.report.html import write_html_report


class Stages(Protocol):
    """What a run needs of the pipeline it runs: `graph.Pipeline` is one."""

    inputs: list[str]
    config: Config
    output_dir: str | None
    command: str | None
    damaged: dict[str, str]
    empty_files: list[str]
    duplicate_ids: dict | None

    @property
    def layout(self) -> Layout: ...

    def files(self) -> list[InputFile]: ...
    def tokenizer(self) -> PortableTokenizer: ...
    def partitions(self, partition_size: int | None = None) -> list[PartitionSpec]: ...
    def share_storage_options(self) -> None: ...
    def duplicates(self) -> dict: ...
    def analyse(self, duplicates: Any, resume: bool = False, progress_topic: str | None = None) -> tuple: ...
    def cap_from_stats(self, partitions: int) -> tuple[dict, int]: ...
    def tokenize(self, thresholds: Any, resume: bool = False) -> Any: ...


class PipelineRun:
    """One run of a pipeline's stages (`graph.Pipeline`): `check()`, then `run()`."""

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
        with hold_output_dir(self.pipeline.layout.root, overwrite=overwrite) as lock:
            self._lock = lock
            try:
                return self._run(overwrite, resume, progress, strict, html, startup_seconds)
            finally:
                self._lock = None

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
        with clock.stage("scan"):
            specs = self._plan(overwrite, resume)
        if strict:
            check_strict(self.pipeline.damaged, self.pipeline.empty_files)
        analysed, thresholds, distinct_targets, duplicate_texts = self._analyse(clock, specs, resume, progress, strict)

        with clock.stage("tokenize"):
            tokenized, _ = compute_stage(
                "tokenize", self.pipeline.tokenize(dask.delayed(thresholds), resume=resume), None, progress
            )

        def report_now() -> dict:
            return build_report(
                analysed,
                tokenized,
                distinct_targets=distinct_targets,
                capped_targets=len(thresholds),
                duplicate_texts=duplicate_texts,
                seconds=seconds,
                config=self.pipeline.config.to_dict(),
                inputs=self.pipeline.inputs,
            )

        with clock.stage("dataset"):
            # Without partitions (empty input) the dataset still gets the output's columns.
            schema = (
                None if specs else ExampleTokenizer(self.pipeline.config.tokenize, self.pipeline.tokenizer()).schema
            )
            splits: dict[str, dict] = {}
            dataset_path = write_dataset(
                layout,
                [s.index for s in specs],
                self.pipeline.config.tokenize.seq_len,
                lock=self._lock,
                schema=schema,
                validation_fraction=self.pipeline.config.output.validation_fraction,
                description=DESCRIPTION,
                card=functools.partial(self._card, report_now(), splits),
            )
        seconds["total"] = clock.elapsed()

        report = report_now()
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
        write_report(report, layout.root)
        if html:
            write_html_report(report, layout.root)
        return report

    def _plan(self, overwrite: bool, resume: bool) -> list[PartitionSpec]:
        """The partitions (the interrupted run's on `resume`); a new run empties its directory, writes its manifest."""
        layout = self.pipeline.layout
        if resume:  # the same partitions as the interrupted run, whatever the cluster now
            return self.pipeline.partitions(partition_size=read_json(layout.manifest)["partition_size_used"])
        prepare_output_dir(layout.root, overwrite=overwrite)
        specs = self.pipeline.partitions()
        write_manifest(
            layout,
            self.pipeline.files(),
            self.pipeline.config,
            partition_size_used=max((s.records for s in specs), default=0),
            partitions=len(specs),
            analysis_format=ANALYSIS_FORMAT,
        )
        return specs

    def _analyse(
        self, clock: Stopwatch, specs: list[PartitionSpec], resume: bool, progress: Progress, strict: bool
    ) -> tuple[list, dict, int, int]:
        """Dedup, then stage 1: (its stats, the cap thresholds, distinct targets, duplicated texts)."""
        layout = self.pipeline.layout
        with clock.stage("dedup"):
            duplicates = self.pipeline.duplicates()

        with clock.stage("analyse"):
            clear_attempts(layout.work)  # markers of an interrupted run's partitions are not crashes
            topic = f"dask-prep-progress-{uuid.uuid4().hex}" if follows_partitions(progress) else None
            stats_bag, cap_item = self.pipeline.analyse(
                dask.delayed(duplicates, pure=True), resume=resume, progress_topic=topic
            )
            analysed, (thresholds, distinct_targets) = compute_stage(
                "analyse",
                stats_bag,
                cap_item,
                progress,
                topic=topic,
                documents=sum(s.records for s in specs),
                redo_item=lambda: self.pipeline.cap_from_stats(len(specs)),
            )
            if strict:
                check_strict({}, [], analysed)
        return analysed, thresholds, distinct_targets, len(duplicates)

    def _add_to_report(self, report: dict) -> None:
        """What the report says beside the stages' counts: where the inputs were damaged, empty or repeated."""
        report["damaged_files"].update(self.pipeline.damaged)
        report["empty_files"] = self.pipeline.empty_files
        report["duplicate_ids"] = self.pipeline.duplicate_ids

    def _card(self, report: dict, splits_out: dict, features: Any, splits: dict[str, dict]) -> str:
        """The dataset's README.md; `splits_out` receives the split sizes for the report."""
        splits_out.update(splits)
        pipeline = self.pipeline
        tokenizer = pipeline.tokenizer()
        api_call = f"dask_prep.Pipeline({pipeline.inputs!r}, config, {pipeline.output_dir!r}).run()  # Python API"
        return card_text(
            features=features,
            splits=splits,
            name=os.path.basename(dataset_dir_name(pipeline.config.tokenize.seq_len)),
            command=pipeline.command or api_call,
            config=pipeline.config.to_dict(),
            counts=report,
            tokenizer={
                "model": pipeline.config.tokenize.model,
                "class": tokenizer.class_name,
                "unk_token": tokenizer.unk_token,
            },
            versions=versions(),
        )
