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
import operator
import os
from typing import Any

import dask
import dask.bag as db

from dask_prep.analysis.filters import FilterChain, kiwi_analyser
from dask_prep.analysis.isolation import attempt
from dask_prep.analysis.kiwi import get_kiwi
from dask_prep.config import Config
from dask_prep.coref.entities import Summary, cap_thresholds, merge_summaries
from dask_prep.coref.tokenizer import PortableTokenizer
from dask_prep.dedup.exact import (
    doc_id_of,
    fingerprints,
    first_of_repeated,
    mark_duplicates,
    merge_repeated_ids,
    repeated_id,
    summarize_repeated_ids,
)
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
from dask_prep.output.layout import Layout, read_json
from dask_prep.pipeline.cluster import StorageOptionsPlugin, register_kiwi
from dask_prep.pipeline.partition import analyse_partition, tokenize_partition
from dask_prep.pipeline.progress import progress_events
from dask_prep.pipeline.runner import PipelineRun
from dask_prep.stats import AnalysisStats
from dask_prep.workers import current_client, current_worker


def _partition_bag(specs: list[PartitionSpec], *, reading: bool = True) -> db.Bag:
    """The partition specs as a bag: one per bag partition, or consecutive ones grouped.

    A task that reads input reads its specs in order with one `PartitionReader`, so
    grouping a compressed file's consecutive partitions decompresses that file once per
    group instead of once per partition. Groups are made only when there are more specs
    than files and than `PARTITIONS_PER_THREAD` per worker thread (which keeps every
    thread busy to the end), and hold at most `MAX_SPECS_PER_TASK` (for progress and
    retries). Stages that do not read the input (`reading=False`) keep one spec per task.
    """
    if not reading:
        return db.from_sequence(specs, npartitions=max(len(specs), 1))
    files = len({piece.file.path for spec in specs for piece in spec.slices})
    tasks = max(PARTITIONS_PER_THREAD * _total_threads(), files, -(-len(specs) // MAX_SPECS_PER_TASK))
    return db.from_sequence(specs, npartitions=max(1, min(len(specs), tasks)))


def _worker_address() -> str | None:
    worker = current_worker()
    return None if worker is None else worker.address


def _reader(config: Config) -> PartitionReader:
    return PartitionReader(config.input.text_field, config.input.id_field)


def _analyse(
    specs: list[PartitionSpec],
    config: Config,
    layout: Layout,
    duplicates: dict,
    resume: bool,
    progress_topic: str | None = None,
) -> list:
    results = []
    events = progress_events(progress_topic)
    with _reader(config) as reader:
        for spec in specs:
            if events is not None:
                events.partition = spec.index
            # A marker left by an attempt whose process died: this attempt isolates Kiwi.
            with attempt(layout.work, "analyse", spec.index) as died_before:
                stats = analyse_partition(
                    spec,
                    config,
                    layout,
                    duplicates=duplicates,
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


def _read(specs: list[PartitionSpec], config: Config) -> list[Document]:
    with _reader(config) as reader:
        return [doc for spec in specs for doc in reader.read(spec)[0]]


def _judge(specs: list[PartitionSpec], config: Config, duplicates: dict) -> list[Document]:
    chain = FilterChain(config)
    docs = _read(specs, config)
    mark_duplicates(docs, duplicates)
    for _ in chain.run(docs, kiwi_analyser(get_kiwi())):
        pass
    return docs


def _fingerprints(specs: list[PartitionSpec], config: Config) -> list[tuple[int, tuple]]:
    return fingerprints(_read(specs, config))


def _summaries(stats: list[AnalysisStats], cap: int | None) -> Summary:
    return merge_summaries((s.summary for s in stats), cap)


def _cap_result(summary: Summary, cap: int | None) -> tuple[dict, int]:
    return cap_thresholds(summary, cap), len(summary)


def _without_summary(stats: AnalysisStats) -> AnalysisStats:
    return dataclasses.replace(stats, summary=None)


# Enough partitions per worker thread that the last ones finish close together. (8 per
# thread was measured too: no better on the benchmark's 2-worker runs; benchmarks/HISTORY.md.)
PARTITIONS_PER_THREAD = 4
# At most this many partitions per reading task (see `_partition_bag`).
MAX_SPECS_PER_TASK = 16


def _total_threads() -> int:
    client = current_client()
    return (os.cpu_count() or 1) if client is None else max(1, sum(client.nthreads().values()))


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
        self.duplicate_ids: dict | None = None  # set by `duplicates()`

    @property
    def layout(self) -> Layout:
        if self.output_dir is None:
            raise ValueError("this step writes files: give the Pipeline an output_dir")
        return Layout(self.output_dir)

    def files(self) -> list[InputFile]:
        if self._files is None:
            for given in self.inputs:
                storage.check_backend(given)
            try:
                self._files = resolve_inputs(self.inputs)
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

    def partitions(self, partition_size: int | None = None) -> list[PartitionSpec]:
        """Partition specs of equal size, at most `partition_size` records (files scanned on the cluster).

        A small corpus is cut finer so that every worker thread gets several partitions.
        """
        if self._specs is None:
            files = self.files()
            self.share_storage_options()
            # Files in groups: a task per file cost more than scanning a small file.
            groups = max(1, min(len(files), PARTITIONS_PER_THREAD * _total_threads()))
            scans = db.from_sequence(files, npartitions=groups).map(scan_file).compute()
            self.damaged = {f.key: s.damage for f, s in zip(files, scans, strict=True) if s.damage}
            self.empty_files = [f.key for f, s in zip(files, scans, strict=True) if s.records == 0]
            self._specs = plan_partitions(
                files,
                [s.records for s in scans],
                partition_size or self.config.input.partition_size,
                self.config.input.max_samples,
                min_partitions=1 if partition_size else PARTITIONS_PER_THREAD * _total_threads(),
            )
        return self._specs

    def tokenizer(self) -> PortableTokenizer:
        """The tokenizer, loaded and checked once here; the workers get it from this process."""
        if self._tokenizer is None:
            self._tokenizer = PortableTokenizer.load(self.config.tokenize.model)
        return self._tokenizer

    def documents(self) -> db.Bag:
        """Every input record as a `Document` (malformed ones carry their reason)."""
        return _partition_bag(self.partitions()).map_partitions(_read, self.config)

    def duplicates(self) -> dict[int, tuple]:
        """{fingerprint: (doc id, source, line) of the copy to keep} for every repeated text.

        A Dask bag groupby by fingerprint, shuffled across the cluster (tasks shuffle), so
        no worker holds more than its share of the keys; only the duplicated fingerprints
        reach the client. The same pass groups by document id for `duplicate_ids` (ids
        found on several documents, e.g. one file twice, or ids reused with other texts).
        """
        if not self.config.input.dedup:
            return {}
        specs = self.partitions()
        pairs = _partition_bag(specs).map_partitions(_fingerprints, self.config)
        shuffled = max(1, len(specs) // 16)
        by_text = pairs.groupby(operator.itemgetter(0), shuffle="tasks", npartitions=shuffled)
        by_id = pairs.groupby(doc_id_of, shuffle="tasks", npartitions=shuffled)
        keep, self.duplicate_ids = dask.compute(
            by_text.map(first_of_repeated).filter(None),
            by_id.map(repeated_id).filter(None).reduction(summarize_repeated_ids, merge_repeated_ids),
        )
        return dict(keep)

    def judged(self, duplicates: dict[int, str] | None = None) -> db.Bag:
        """Every document after dedup and the quality filters: `rejected_by`, `metrics` set."""
        dups = self.duplicates() if duplicates is None else duplicates
        return _partition_bag(self.partitions()).map_partitions(_judge, self.config, dups)

    def analyse(
        self, duplicates: Any, resume: bool = False, progress_topic: str | None = None
    ) -> tuple[db.Bag, db.Item]:
        """Stage 1: per-partition stats, and (cap thresholds, distinct targets) as an Item.

        With `progress_topic`, the tasks send their progress inside partitions as distributed
        events on that topic.
        """
        task_args = (self.config, self.layout, duplicates, resume, progress_topic)
        return self._with_cap(_partition_bag(self.partitions()).map_partitions(_analyse, *task_args))

    def _with_cap(self, stats: db.Bag) -> tuple[db.Bag, db.Item]:
        """Stage-1 stats without their entity summaries, and the cap computed from those (an Item)."""
        cap = self.config.entities.max_entity_freq
        summary = stats.reduction(
            functools.partial(_summaries, cap=cap),
            functools.partial(merge_summaries, cap=cap),
        )
        return stats.map(_without_summary), summary.apply(functools.partial(_cap_result, cap=cap))

    def cap_from_stats(self, partitions: int) -> tuple[dict, int]:
        """(cap thresholds, distinct targets) again, from the finished partitions' stats files.

        After a worker died the reduction computed beside stage 1 may have lost pieces (or
        had them failed by Dask); the stats files of every partition are all on disk then.
        """
        cap = self.config.entities.max_entity_freq
        paths = [self.layout.stats("analyse", i) for i in range(partitions)]
        summary = (
            db.from_sequence(paths, npartitions=max(1, min(len(paths), PARTITIONS_PER_THREAD * _total_threads())))
            .map(read_json)
            .map(AnalysisStats.from_json)
            .reduction(functools.partial(_summaries, cap=cap), functools.partial(merge_summaries, cap=cap))
        )
        return _cap_result(summary.compute(), cap)

    def check(self, *, overwrite: bool = False, resume: bool = False, tokenizer: bool = True) -> None:
        """Fail fast, before any cluster work (`runner.PipelineRun.check`)."""
        PipelineRun(self).check(overwrite=overwrite, resume=resume, tokenizer=tokenizer)

    def run(self, **kwargs: Any) -> dict:
        """Every stage, the dataset and the report (`runner.PipelineRun.run`); returns the report."""
        return PipelineRun(self).run(**kwargs)

    def tokenize(self, thresholds: Any, resume: bool = False) -> db.Bag:
        """Stage 2: per-partition stats of the capped, tokenized output parts."""
        tokenizer = dask.delayed(self.tokenizer(), pure=True)  # sent once to each worker
        return _partition_bag(self.partitions(), reading=False).map_partitions(
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
