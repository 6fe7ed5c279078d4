"""The Dask graph: the only module that knows about Dask.

    files ──scan──▶ partition specs ──map_partitions(analyse)──▶ stage-1 parts + stats
                                            │ entity summaries
                                            ▼ reduction (tree, on the workers)
                                   cap thresholds (over-cap entities only)
                                            │
         stage-1 parts ──map_partitions(tokenize, thresholds)──▶ output parts ──▶ datasets

Each stage can be run on its own for inspection (`Pipeline.documents()`,
`Pipeline.judged()`); `Pipeline.run()` or `run()` does everything.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.bag as db

from dask_prep.config import Config
from dask_prep.examples import cap_thresholds, merge_summaries
from dask_prep.filters import FilterChain, kiwi_analyser
from dask_prep.kiwi_setup import KiwiPlugin, get_kiwi
from dask_prep.output import check_output_dir, prepare_output_dir, write_dataset
from dask_prep.partition import analyse_partition, tokenize_partition
from dask_prep.reading import PartitionSpec, plan_partitions, read_partition, resolve_inputs, scan_file
from dask_prep.report import build_report, write_report
from dask_prep.tokenization import load_tokenizer


@dataclass
class ClusterOptions:
    """Where to compute. None of this changes the dataset."""

    scheduler: str | None = None  # address of a running scheduler; None = a LocalCluster
    n_workers: int | None = None  # default: one worker process per core
    threads_per_worker: int = 1
    kiwi_threads: int = 1  # Kiwi's own threads per worker for batch analysis
    memory_limit: str = "auto"
    dashboard_address: str = ":8787"
    extra: dict[str, Any] = field(default_factory=dict)


def start_client(options: ClusterOptions) -> Any:
    """A client on a running scheduler or on a new LocalCluster of worker processes."""
    from distributed import Client, LocalCluster

    if options.scheduler:
        client = Client(options.scheduler, timeout="10s")
    else:
        cluster = LocalCluster(
            n_workers=options.n_workers or os.cpu_count() or 1,
            threads_per_worker=options.threads_per_worker,
            processes=True,
            memory_limit=options.memory_limit,
            dashboard_address=options.dashboard_address,
            **options.extra,
        )
        client = Client(cluster)
    register_kiwi(client, options.kiwi_threads)
    return client


def register_kiwi(client: Any, kiwi_threads: int = 1) -> None:
    """Every current and future worker builds one Kiwi in its plugin `setup()`."""
    client.register_plugin(KiwiPlugin(num_threads=kiwi_threads))


def _partition_bag(specs: list[PartitionSpec]) -> db.Bag:
    return (
        db.from_sequence(specs, npartitions=max(len(specs), 1))
        if specs
        else db.from_sequence([], npartitions=1)
    )


def _analyse(specs: list[PartitionSpec], config: Config, work_dir: str) -> list[dict]:
    return [analyse_partition(spec, config, work_dir) for spec in specs]


def _tokenize(specs: list[PartitionSpec], config: Config, work_dir: str, thresholds: dict) -> list[dict]:
    return [tokenize_partition(spec.index, config, work_dir, thresholds) for spec in specs]


def _judge(specs: list[PartitionSpec], config: Config) -> list:
    chain = FilterChain(config)
    out = []
    for spec in specs:
        docs, _ = read_partition(spec, config.input.text_field, config.input.id_field)
        list(chain.run(docs, kiwi_analyser(get_kiwi())))
        out.extend(docs)
    return out


def _summaries(stats: list[dict], cap: int | None) -> dict:
    return merge_summaries((s["summary"] for s in stats), cap)


def _cap_result(summary: dict, cap: int | None) -> tuple[dict, int]:
    return cap_thresholds(summary, cap), len(summary)


def _without_summary(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k != "summary"}


class Pipeline:
    """Korean corpus → entity-coreference dataset, one inspectable stage at a time."""

    def __init__(self, inputs: list[str], config: Config, output_dir: str | None = None) -> None:
        self.inputs = list(inputs)
        self.config = config
        self.output_dir = output_dir
        self._specs: list[PartitionSpec] | None = None

    @property
    def work_dir(self) -> str:
        if self.output_dir is None:
            raise ValueError("this step writes files: give the Pipeline an output_dir")
        return os.path.join(self.output_dir, "_work")

    def partitions(self) -> list[PartitionSpec]:
        """Partition specs of at most `partition_size` records (files scanned on the cluster)."""
        if self._specs is None:
            files = resolve_inputs(self.inputs)
            scans = db.from_sequence(files, npartitions=max(len(files), 1)).map(scan_file).compute()
            self.damaged = {f.key: s.damage for f, s in zip(files, scans, strict=True) if s.damage}
            self.empty_files = [f.key for f, s in zip(files, scans, strict=True) if s.records == 0]
            self._specs = plan_partitions(
                files,
                [s.records for s in scans],
                self.config.input.partition_size,
                self.config.input.max_samples,
            )
        return self._specs

    def documents(self) -> db.Bag:
        """Every input record as a `Document` (malformed ones carry their reason)."""
        read = functools.partial(
            read_partition, text_field=self.config.input.text_field, id_field=self.config.input.id_field
        )
        return _partition_bag(self.partitions()).map(lambda spec: read(spec)[0]).flatten()

    def judged(self) -> db.Bag:
        """Every document after the quality filters: `rejected_by` and `metrics` filled in."""
        return _partition_bag(self.partitions()).map_partitions(_judge, self.config)

    def analyse(self) -> tuple[db.Bag, db.Item]:
        """Stage 1: per-partition stats, and (cap thresholds, distinct targets) as an Item."""
        stats = _partition_bag(self.partitions()).map_partitions(_analyse, self.config, self.work_dir)
        cap = self.config.entities.max_entity_freq
        summary = stats.reduction(
            functools.partial(_summaries, cap=cap),
            functools.partial(merge_summaries, cap=cap),
        )
        return stats.map(_without_summary), summary.apply(functools.partial(_cap_result, cap=cap))

    def tokenize(self, thresholds: Any) -> db.Bag:
        """Stage 2: per-partition stats of the capped, tokenized output parts."""
        return _partition_bag(self.partitions()).map_partitions(
            _tokenize, self.config, self.work_dir, thresholds
        )

    def check(self, *, overwrite: bool = False) -> None:
        """Fail fast, before any cluster work, on inputs, tokenizer or output directory."""
        resolve_inputs(self.inputs)
        load_tokenizer(self.config.tokenize.model)
        if self.output_dir is not None:
            check_output_dir(self.output_dir, overwrite=overwrite)

    def run(self, *, overwrite: bool = False, progress: Any = None) -> dict[str, Any]:
        """Everything, on the current Dask scheduler; returns the report."""
        if self.output_dir is None:
            raise ValueError("run() needs an output_dir")
        progress = progress or (lambda stage, futures: None)
        load_tokenizer(self.config.tokenize.model)  # fail early, in the client, on a bad model
        prepare_output_dir(self.output_dir, overwrite=overwrite)
        seconds: dict[str, float] = {}
        start = time.perf_counter()

        specs = self.partitions()
        seconds["scan"] = time.perf_counter() - start

        t = time.perf_counter()
        stats_bag, cap_item = self.analyse()
        analysed, (thresholds, distinct_targets) = _compute("analyse", progress, stats_bag, cap_item)
        seconds["analyse"] = time.perf_counter() - t

        t = time.perf_counter()
        (tokenized,) = _compute("tokenize", progress, self.tokenize(dask.delayed(thresholds)))
        seconds["tokenize"] = time.perf_counter() - t

        t = time.perf_counter()
        dataset_path = write_dataset(
            self.work_dir, [s.index for s in specs], self.output_dir, self.config.tokenize.seq_len
        )
        seconds["dataset"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - start

        report = build_report(
            analysed,
            tokenized,
            distinct_targets=distinct_targets,
            capped_targets=len(thresholds),
            seconds=seconds,
            config=self.config.to_dict(),
            inputs=self.inputs,
        )
        report["dataset"] = dataset_path
        report["damaged_files"].update(self.damaged)
        report["empty_files"] = self.empty_files
        write_report(report, self.output_dir)
        return report


def _compute(stage: str, progress: Any, *collections: Any) -> tuple:
    """Compute on the active distributed client (with progress) or the default scheduler."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return dask.compute(*collections)
    futures = client.compute(list(collections))
    progress(stage, futures)
    return tuple(client.gather(futures))


def run(
    inputs: list[str], config: Config, output_dir: str, client: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Run the whole pipeline; with `client=None` on the active client or default scheduler."""
    if client is not None:
        register_kiwi(client)
    return Pipeline(inputs, config, output_dir).run(**kwargs)
