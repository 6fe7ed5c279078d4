"""`derive`: another dataset from the analysis a finished run left, without Kiwi.

    RUN_DIR (manifest, stats, stage-1 parts with each kept document's Kiwi tokens)
        ──map_partitions(derive_partition)──▶ new stage-1 parts + stats ──▶ cap ──▶ tokenize ──▶ dataset

A run's stage 1 keeps, for every kept document, its text and Kiwi tokens
(`coref.kept_analysis`). Everything after the analysis is a pure function of those and of
the config's `tokenize`, `entities` and `output.validation_fraction` fields, so `derive`
changes only those: the entity step, the cap, tokenization and the publication are the
ones of `run` (`DeriveRun` is a `runner.PipelineRun` whose stage 1 reads instead of
analysing). Any other change, which would need Kiwi again, is refused (`refused_change`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import dask.bag as db

from dask_prep.config import Config, ConfigError
from dask_prep.coref.kept_analysis import ANALYSIS_FORMAT
from dask_prep.coref.tokenizer import check_model
from dask_prep.io import storage
from dask_prep.io.inputs import PartitionSpec
from dask_prep.output import fencing
from dask_prep.output.layout import (
    Layout,
    OutputDirError,
    check_not_in_use,
    check_output_dir,
    config_differences,
    prepare_output_dir,
    read_json,
    write_manifest,
)
from dask_prep.pipeline.compute import compute_stage
from dask_prep.pipeline.dedup_graph import Dedup
from dask_prep.pipeline.derive_partition import DeriveError, derive_partition
from dask_prep.pipeline.graph import Pipeline
from dask_prep.pipeline.progress import Progress
from dask_prep.pipeline.runner import PipelineRun
from dask_prep.workers import current_worker

# What `derive` may change: everything after the analysis.
DERIVABLE_SECTIONS = ("tokenize.", "entities.")
# output.decisions: derive writes no decisions (they stay in the run it derives from);
# output.source and output.license: what the card says of the data.
DERIVABLE_FIELDS = ("output.validation_fraction", "output.decisions", "output.source", "output.license")
# Entity fields that the `no_repeated_entity` rule reads too: with it on, they decide which
# documents are kept, and the documents it rejected were not kept with their tokens.
KEEP_DECIDING_ENTITY_FIELDS = ("entities.min_chars", "entities.min_mentions", "entities.stop_entities")


def refused_change(source: Config, derived: Config) -> str | None:
    """Why `derived` cannot be derived from an analysis made with `source` (one line), or None."""
    repeated_rule = source.rules.get("no_repeated_entity")
    keeps = repeated_rule is not None and repeated_rule.enabled
    for name, old, new in config_differences(source.to_dict(), derived.to_dict()):
        if keeps and name in KEEP_DECIDING_ENTITY_FIELDS:
            why = "the no_repeated_entity rule reads it, so it decides which documents are kept"
        elif name.startswith(DERIVABLE_SECTIONS) or name in DERIVABLE_FIELDS:
            continue
        else:
            why = "it decides which documents are read, analysed or kept"
        return f"derive cannot change {name} ({old!r} -> {new!r}): {why}; that needs Kiwi again (`dask-prep run`)"
    return None


@dataclass(frozen=True)
class SourceRun:
    """The run directory to derive from, checked: its config, partitions and where its analysis is."""

    run_dir: str  # as given
    analysis_dir: str  # the run that analysed (RUN_DIR itself, or the one a derived RUN_DIR came from)
    manifest: dict[str, Any]  # RUN_DIR's
    config: Config  # RUN_DIR's final config
    partitions: int
    report: dict[str, Any]  # the analysing run's report.json ({} if it did not finish)

    @property
    def layout(self) -> Layout:
        return Layout(self.analysis_dir)

    def provenance(self) -> dict[str, Any]:
        """What a derived run records of where it came from (manifest and report)."""
        return {"run_dir": self.run_dir, "analysis_dir": self.analysis_dir, "config_hash": self.config.config_hash()}


def open_source(run_dir: str) -> SourceRun:
    """RUN_DIR's manifest and finished analysis, or a `DeriveError` saying why it cannot be derived from."""
    run_dir = storage.normalize(run_dir)
    storage.check_backend(run_dir)
    layout = Layout(run_dir)
    if not storage.exists(layout.manifest):
        raise DeriveError(f"{run_dir!r} is not a dask-prep run directory (it has no manifest.json)")
    manifest = read_json(layout.manifest)
    config = Config.from_dict(manifest["config"])
    derived_from = manifest.get("derived_from")
    if derived_from is not None:  # derived: its own parts hold no tokens; derive from its analysis
        analysis = open_source(derived_from["analysis_dir"])
        return dataclasses.replace(analysis, run_dir=run_dir, manifest=manifest, config=config)
    version = manifest.get("analysis_format", 0)
    if version != ANALYSIS_FORMAT or manifest.get("partitions") is None:
        raise DeriveError(
            f"{run_dir!r} was made by a dask-prep that keeps analysis format {version}, this one derives from "
            f"format {ANALYSIS_FORMAT} (Kiwi tokens of every kept document): make it again with `dask-prep run`"
        )
    partitions = manifest["partitions"]
    stats = set(storage.listdir(os.path.dirname(layout.stats("analyse", 0))))
    finished = sum(os.path.basename(layout.stats("analyse", i)) in stats for i in range(partitions))
    if finished < partitions:
        raise DeriveError(
            f"the analysis in {run_dir!r} is not finished ({finished} of {partitions} partitions): finish it with "
            "the same `dask-prep run` command and --resume"
        )
    report_path = os.path.join(run_dir, "report.json")
    report = read_json(report_path) if storage.exists(report_path) else {}
    return SourceRun(run_dir, run_dir, manifest, config, partitions, report)


def derived_config(source: SourceRun, changes: dict[str, Any] | None = None) -> Config:
    """The source's config with `changes` (a partial config, as in a --config YAML) laid over it."""
    return Config.from_dict(changes or {}, base=source.config)


def _derive(specs: list[PartitionSpec], config: Config, source: Layout, layout: Layout, resume: bool) -> list:
    worker = current_worker()
    results = []
    for spec in specs:
        stats = derive_partition(spec.index, config, source, layout, resume=resume)
        results.append(dataclasses.replace(stats, worker=None if stats.reused or worker is None else worker.address))
    return results


class DerivedPipeline(Pipeline):
    """A `Pipeline` whose stage 1 reads a finished run's analysis (`derive_partition`) instead of the inputs."""

    def __init__(
        self, source: SourceRun, config: Config, output_dir: str, storage_options: dict[str, Any] | None = None
    ) -> None:
        super().__init__([r["path"] for r in source.manifest["inputs"]], config, output_dir, storage_options)
        self.storage_options = storage.configure(storage_options, [self.output_dir, source.analysis_dir])
        self.source = source
        if self.output_dir in (source.run_dir, source.analysis_dir):
            raise DeriveError("--output-dir must be another directory than RUN_DIR and the run it derives from")
        refused = refused_change(source.config, config)
        if refused is not None:
            raise ConfigError(refused)

    def partitions(self, partition_size: int | None = None) -> list[PartitionSpec]:
        return [PartitionSpec(index=i, slices=()) for i in range(self.source.partitions)]

    def api_call(self) -> str:
        source = os.path.basename(self.source.run_dir.rstrip("/"))
        output = os.path.basename((self.output_dir or "").rstrip("/"))
        return f"dask_prep.derive({source!r}, {output!r}, changes)  # Python API"

    def dedup(self, progress: Progress | None = None) -> Dedup:
        """Nothing to find: the analysed run's dedup decided which documents were kept."""
        return Dedup(None, self.source.report.get("duplicate_texts") or 0, self.source.report.get("duplicate_ids"))

    def documents(self) -> db.Bag:
        raise DeriveError("a derived pipeline reads no input: use Pipeline(inputs, config).documents()")

    def judged(self, dedup: Dedup | None = None) -> db.Bag:
        raise DeriveError("a derived pipeline judges no document: use Pipeline(inputs, config).judged()")

    def analyse(self, dedup: Dedup | None = None, resume: bool = False, progress_topic: str | None = None) -> tuple:
        specs = self.partitions()
        stats = db.from_sequence(specs, npartitions=max(len(specs), 1)).map_partitions(
            _derive, self.config, self.source.layout, self.layout, resume
        )
        return self._with_cap(stats)

    def check(self, *, overwrite: bool = False, resume: bool = False, tokenizer: bool = True) -> None:
        DeriveRun(self).check(overwrite=overwrite, resume=resume, tokenizer=tokenizer)

    def run(self, **kwargs: Any) -> dict:
        return DeriveRun(self).run(**kwargs)


class DeriveRun(PipelineRun):
    """A `PipelineRun` of a `DerivedPipeline`: its own checks, manifest and report notes, no dedup or Kiwi."""

    pipeline: DerivedPipeline
    analyse_stage = "entities"  # no Kiwi: stage 1 is the entity step alone

    def check(self, *, overwrite: bool = False, resume: bool = False, tokenizer: bool = True) -> None:
        pipeline = self.pipeline
        pipeline.tokenizer() if tokenizer else check_model(pipeline.config.tokenize.model)
        storage.check_backend(pipeline.output_dir)
        check_not_in_use(pipeline.output_dir)
        if not resume:
            check_output_dir(pipeline.output_dir, overwrite=overwrite)
            return
        manifest = read_json(pipeline.layout.manifest) if storage.exists(pipeline.layout.manifest) else {}
        if manifest.get("derived_from") != pipeline.source.provenance() or (
            manifest.get("config_hash") != pipeline.config.config_hash()
        ):
            raise OutputDirError(
                f"cannot resume: {pipeline.output_dir!r} holds no interrupted derive from {pipeline.source.run_dir!r} "
                "with these options; rerun with the same options, or start afresh with --overwrite"
            )

    def _scan(self, overwrite: bool, resume: bool, progress: Progress) -> list[PartitionSpec]:
        """The source run's partitions (no input is read) and, in a new run, the manifest saying where from."""
        source, layout = self.pipeline.source, self.pipeline.layout
        if not resume:
            prepare_output_dir(layout.root, overwrite=overwrite)
            write_manifest(
                layout,
                source.manifest["inputs"],
                self.pipeline.config,
                partition_size_used=source.manifest["partition_size_used"],
                partitions=source.partitions,
                derived_from=source.provenance(),
            )
        fencing.record_identity(layout, self.pipeline.identity)
        return self.pipeline.partitions()

    def _dedup(self, specs: list[PartitionSpec], progress: Progress) -> Dedup:
        return self.pipeline.dedup(progress)

    def _analyse(self, specs: list[PartitionSpec], dedup: Dedup, resume: bool, progress: Progress) -> tuple[list, Any]:
        """Stage 1 from the stored analysis: (each partition's stats, (cap thresholds, distinct targets))."""
        progress.begin(f"finding entities in {self.pipeline.source.run_dir}'s analysis ({len(specs):,} partitions)")
        stats_bag, cap_item = self.pipeline.analyse(resume=resume)
        return compute_stage(
            "entities", stats_bag, cap_item, progress, redo_item=lambda: self.pipeline.cap_from_stats(len(specs))
        )

    def _add_to_report(self, report: dict) -> None:
        source = self.pipeline.source.report
        report["damaged_files"].update(source.get("damaged_files", {}))
        report["empty_files"] = source.get("empty_files", [])
        report["duplicate_ids"] = source.get("duplicate_ids")
        report["near_duplicates"] = source.get("near_duplicates")
        report["renamed_ids"] = source.get("renamed_ids")
        report["derived_from"] = self.pipeline.source.provenance()


def derive(
    run_dir: str,
    output_dir: str,
    changes: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Another dataset from `run_dir`'s analysis, on the active Dask client; returns its report.

    `changes` is a partial config (`{"tokenize": {"seq_len": 512}}`) over the run's own;
    `kwargs` go to `PipelineRun.run` (`overwrite`, `resume`, `progress`, ...).
    """
    storage.configure(storage_options, [run_dir])
    source = open_source(run_dir)
    pipeline = DerivedPipeline(source, derived_config(source, changes), output_dir, storage_options)
    return pipeline.run(**kwargs)
