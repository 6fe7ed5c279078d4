"""The Dask graph: the pipeline's stages as Dask bags, and what their tasks run on the workers.

    files ──scan──▶ partition specs ──map_partitions(analyse)──▶ stage-1 parts + stats
                                            │ entity summaries
                                            ▼ reduction (tree, on the workers)
                                   cap thresholds (over-cap entities only)
                                            │
         stage-1 parts ──map_partitions(tokenize, thresholds)──▶ output parts ──▶ datasets

Each stage can be run on its own for inspection (`Pipeline.documents()`,
`Pipeline.judged()`); `Pipeline.run()` or `run()` does everything (`runner.py`), on a
cluster from `cluster.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import dask
import dask.bag as db

from dask_prep.analysis.filters import FilterChain, kiwi_analyser
from dask_prep.analysis.isolation import attempt
from dask_prep.analysis.kiwi import get_kiwi
from dask_prep.config import Config
from dask_prep.coref.tokenizer import PortableTokenizer
from dask_prep.dedup.rejects import apply_rejects
from dask_prep.document import Document
from dask_prep.io import storage
from dask_prep.io.reading import (
    InputFile,
    PartitionReader,
    PartitionSpec,
    plan_partitions,
    resolve_inputs,
    scan_file,
)
from dask_prep.output.fencing import RunIdentity, committing, read_stats
from dask_prep.output.layout import Layout
from dask_prep.pipeline.bags import PARTITIONS_PER_THREAD, group_size, partition_bag, total_threads
from dask_prep.pipeline.cluster import StorageOptionsPlugin, register_kiwi
from dask_prep.pipeline.compute import compute_with_progress
from dask_prep.pipeline.dedup_graph import Dedup, find_duplicates, rejects_of
from dask_prep.pipeline.partition import analyse_partition, tokenize_partition
from dask_prep.pipeline.progress import Progress, progress_events
from dask_prep.pipeline.reduction import _cap_result, _merge_reduced, _summaries
from dask_prep.pipeline.runner import PipelineRun
from dask_prep.stats import AnalysisStats
from dask_prep.workers import current_client, current_worker


def _worker_address() -> str | None:
    worker = current_worker()
    return None if worker is None else worker.address


def _reader(config: Config) -> PartitionReader:
    return PartitionReader(config.input.text_field, config.input.id_field)


def _analyse(
    specs: list[PartitionSpec],
    rejects: list | None,
    config: Config,
    layout: Layout,
    resume: bool,
    progress_topic: str | None = None,
) -> list:
    """Stage 1 of a group of partitions; `rejects`: dedup's rejects of these partitions only."""
    rejected = rejects_of(rejects)
    results = []
    events = progress_events(progress_topic)
    with _reader(config) as reader:
        for spec in specs:
            if events is not None:
                events.partition = spec.index
            # A marker left by an attempt whose process died: this attempt isolates Kiwi.
            fence = functools.partial(committing, layout)
            with attempt(layout.work, "analyse", spec.index, layout.token, fence) as died_before:
                stats = analyse_partition(
                    spec,
                    config,
                    layout,
                    rejects=rejected.get(spec.index),
                    write_decisions=config.output.decisions,
                    resume=resume,
                    reader=reader,
                    isolate=died_before,
                    on_progress=events,
                )
            if events is not None:  # this partition is done, though the task may go on with the next
                events.send(stats.read, stats.kept)
            # A reused partition was done by a worker of the interrupted run, not this one.
            results.append(dataclasses.replace(stats, worker=None if stats.reused else _worker_address()))
    return results


def _tokenize(
    specs: list[PartitionSpec],
    config: Config,
    layout: Layout,
    thresholds: dict,
    tokenizer: PortableTokenizer,
    resume: bool,
) -> list:
    results = []
    for spec in specs:
        stats = tokenize_partition(spec.index, config, layout, thresholds, tokenizer=tokenizer, resume=resume)
        results.append(dataclasses.replace(stats, worker=None if stats.reused else _worker_address()))
    return results


def _read(specs: list[PartitionSpec], config: Config, rejects: list | None = None) -> list[Document]:
    """The documents of these partitions, dedup's `rejects` of them marked."""
    rejected = rejects_of(rejects)
    with _reader(config) as reader:
        parts = [(reader.read(spec)[0], rejected.get(spec.index, {})) for spec in specs]
    return [doc for docs, found in parts for doc in apply_rejects(docs, found)]


def _judge(specs: list[PartitionSpec], rejects: list | None, config: Config) -> list[Document]:
    chain = FilterChain(config)
    docs = _read(specs, config, rejects)
    for _ in chain.run(docs, kiwi_analyser(get_kiwi())):
        pass
    return docs


def _without_summary(stats: AnalysisStats) -> AnalysisStats:
    return dataclasses.replace(stats, summary=None, proper_counts=None)


class Pipeline:
    """Korean corpus → entity-coreference dataset, one inspectable stage at a time.

    The stages are built here as Dask bags; `check()` and `run()` (a whole run, from
    `runner.PipelineRun`) compute them in order and write the dataset and the report.
    """

    def __init__(
        self,
        inputs: list[str],
        config: Config,
        output_dir: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        # Workers may run elsewhere (another cwd, another host): give them absolute paths.
        self.inputs = [p if "://" in p else os.path.abspath(p) for p in inputs]
        self.config = config
        # A store URL stays a URL (never a local directory named "s3:"); file:// becomes a path.
        self.output_dir = storage.normalize(output_dir) if output_dir is not None else None
        # fsspec defaults here now, on the workers once a computation starts (`share_storage_options`).
        self.storage_options = storage.configure(storage_options, self.inputs + [self.output_dir or ""])
        self._storage_shared_with: Any = None
        self._files: list[InputFile] | None = None
        self._specs: list[PartitionSpec] | None = None
        self._tokenizer: PortableTokenizer | None = None
        self.damaged: dict[str, str] = {}
        self.empty_files: list[str] = []
        self.command: str | None = None  # the command line, for the dataset card (the CLI sets it)
        self.duplicate_ids: dict | None = None  # set by `dedup()`
        self.near_duplicates: dict | None = None  # set by `dedup()`: near-duplicate clusters (None: off)
        self._group_size: int | None = None
        self.identity: RunIdentity | None = None  # the running run's tokens (set by `runner.PipelineRun`)
        # Documents whose id another document has get new ids (`dask_prep.dedup.ids`): how many
        # and the first few, set by `dedup()`.
        self.renamed_summary: dict | None = None
        self.repeated_inputs: list[str] = []  # input files given more than once (read once)

    @property
    def layout(self) -> Layout:
        if self.output_dir is None:
            raise ValueError("this step writes files: give the Pipeline an output_dir")
        return Layout(self.output_dir, *(self.identity or ()))

    def files(self) -> list[InputFile]:
        if self._files is None:
            for given in self.inputs:
                storage.check_backend(given)
            try:
                self.repeated_inputs = []
                self._files = resolve_inputs(self.inputs, self.repeated_inputs)
            except Exception as exc:
                if storage.is_store_error(exc):
                    raise storage.StorageError(f"cannot read the inputs: {storage.describe(exc)}") from exc
                raise
        return self._files

    def share_storage_options(self) -> None:
        """Register `--storage-options` with the workers of the current client (once per client)."""
        client = current_client()
        if not self.storage_options or client is None:
            return
        if self._storage_shared_with is not client:
            client.register_plugin(StorageOptionsPlugin(self.storage_options))
            self._storage_shared_with = client

    def partitions(self, partition_size: int | None = None, progress: Progress | None = None) -> list[PartitionSpec]:
        """Partition specs of equal size, at most `partition_size` records (files scanned on the cluster).

        A small corpus is cut finer so that every worker thread gets several partitions.
        """
        if self._specs is None:
            files = self.files()
            self.share_storage_options()
            # Files in groups: a task per file cost more than scanning a small file.
            groups = max(1, min(len(files), PARTITIONS_PER_THREAD * total_threads()))
            scanning = db.from_sequence(files, npartitions=groups).map(scan_file)
            (scans,) = compute_with_progress("scan", progress, scanning)
            self.damaged = {f.key: s.damage for f, s in zip(files, scans, strict=True) if s.damage}
            self.empty_files = [f.key for f, s in zip(files, scans, strict=True) if s.records == 0]
            self._specs = plan_partitions(
                files,
                [s.records for s in scans],
                partition_size or self.config.input.partition_size,
                self.config.input.max_samples,
                min_partitions=1 if partition_size else PARTITIONS_PER_THREAD * total_threads(),
            )
        return self._specs

    def tokenizer(self) -> PortableTokenizer:
        """The tokenizer, loaded and checked once here; the workers get it from this process."""
        if self._tokenizer is None:
            self._tokenizer = PortableTokenizer.load(self.config.tokenize.model)
        return self._tokenizer

    def api_call(self) -> str:
        """The Python call that makes this run, for the dataset card when no command line is set."""
        inputs = [os.path.basename(p.rstrip("/")) for p in self.inputs]
        output = os.path.basename((self.output_dir or "").rstrip("/"))
        return f"dask_prep.Pipeline({inputs!r}, config, {output!r}).run()  # Python API"

    def documents(self) -> db.Bag:
        """Every input record as a `Document` (malformed ones carry their reason)."""
        return self._reading_bag().map_partitions(_read, self.config)

    def _reading_group_size(self) -> int:
        """Specs per reading task, fixed once: dedup's rejects are aligned with these groups."""
        if self._group_size is None:
            self._group_size = group_size(self.partitions(), reading=True)
        return self._group_size

    def _reading_bag(self) -> db.Bag:
        return partition_bag(self.partitions(), size=self._reading_group_size())

    def dedup(self, progress: Progress | None = None) -> Dedup:
        """Exact dedup on the cluster (`dedup_graph.find_duplicates`): per-partition rejects.

        The rejects stay on the workers, aligned with the analyse tasks: each task receives
        only its own partitions' rejects. Sets `duplicate_ids` (ids found on several
        documents, e.g. one file twice, or ids reused with other texts), a bounded summary.
        """
        specs, size = self.partitions(), self._reading_group_size()
        groups = [specs[i : i + size] for i in range(0, len(specs), size)]
        names = {f.path: f.key for f in self.files()}
        found = find_duplicates(groups, self.config, progress, names)
        self.duplicate_ids, self.near_duplicates, self.renamed_summary = (
            found.duplicate_ids,
            found.near,
            found.renamed_ids,
        )
        return found

    def judged(self, dedup: Dedup | None = None) -> db.Bag:
        """Every document after dedup (`dedup()`'s result, found here if not given) and the filters."""
        rejects = (dedup or self.dedup()).rejects
        return self._reading_bag().map_partitions(_judge, rejects, self.config)

    def analyse(
        self, dedup: Dedup | None = None, resume: bool = False, progress_topic: str | None = None
    ) -> tuple[db.Bag, db.Item]:
        """Stage 1: per-partition stats, and (cap thresholds, distinct targets) as an Item.

        `dedup` (from `dedup()`) brings each task its partitions' rejects. With `progress_topic`,
        the tasks send their progress inside partitions as distributed events on that topic.
        """
        rejects = dedup.rejects if dedup is not None else None
        task_args = (rejects, self.config, self.layout, resume, progress_topic)
        return self._with_cap(self._reading_bag().map_partitions(_analyse, *task_args))

    def _with_cap(self, stats: db.Bag) -> tuple[db.Bag, db.Item]:
        """Stage-1 stats without their entity summaries, and the cap computed from those (an Item)."""
        entities = self.config.entities
        cap = entities.max_entity_freq
        reduced = stats.reduction(
            functools.partial(_summaries, cap=cap),
            functools.partial(_merge_reduced, cap=cap),
        )
        result = functools.partial(_cap_result, cap=cap, min_proper_share=entities.min_proper_share)
        return stats.map(_without_summary), reduced.apply(result)

    def cap_from_stats(self, partitions: int) -> tuple[dict, int]:
        """(cap thresholds, distinct targets) again, from the finished partitions' stats files.

        After a worker died the reduction computed beside stage 1 may have lost pieces (or
        had them failed by Dask); the stats files of every partition are all on disk then.
        """
        cap, tasks = self.config.entities.max_entity_freq, PARTITIONS_PER_THREAD * total_threads()
        summary = (
            db.from_sequence(list(range(partitions)), npartitions=max(1, min(partitions, tasks)))
            .map(functools.partial(read_stats, self.layout, "analyse"))
            .map(AnalysisStats.from_json)
            .reduction(functools.partial(_summaries, cap=cap), functools.partial(_merge_reduced, cap=cap))
        )
        return _cap_result(summary.compute(), cap, self.config.entities.min_proper_share)

    def check(self, *, overwrite: bool = False, resume: bool = False, tokenizer: bool = True) -> None:
        """Fail fast, before any cluster work (`runner.PipelineRun.check`)."""
        PipelineRun(self).check(overwrite=overwrite, resume=resume, tokenizer=tokenizer)

    def run(self, **kwargs: Any) -> dict:
        """Every stage, the dataset and the report (`runner.PipelineRun.run`); returns the report."""
        return PipelineRun(self).run(**kwargs)

    def tokenize(self, thresholds: Any, resume: bool = False) -> db.Bag:
        """Stage 2: per-partition stats of the capped, tokenized output parts."""
        tokenizer = dask.delayed(self.tokenizer(), pure=True)  # sent once to each worker
        return partition_bag(self.partitions(), reading=False).map_partitions(
            _tokenize, self.config, self.layout, thresholds, tokenizer, resume
        )


def run(
    inputs: list[str],
    config: Config,
    output_dir: str,
    client: Any = None,
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run the whole pipeline; with `client=None` on the active client or default scheduler.

    `output_dir` and `inputs` may be fsspec URLs; `storage_options` (e.g. an S3
    `endpoint_url`) reach this process and every worker.
    """
    if client is not None:
        register_kiwi(client)
    return Pipeline(inputs, config, output_dir, storage_options=storage_options).run(**kwargs)
