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

import dataclasses
import functools
import logging
import operator
import os
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.bag as db
from distributed import WorkerPlugin

from dask_prep import storage
from dask_prep.config import Config
from dask_prep.dataset_card import DESCRIPTION, card_text
from dask_prep.dedup import (
    doc_id_of,
    fingerprints,
    first_of_repeated,
    mark_duplicates,
    merge_repeated_ids,
    repeated_id,
    summarize_repeated_ids,
)
from dask_prep.examples import Summary, cap_thresholds, merge_summaries
from dask_prep.filters import FilterChain, kiwi_analyser
from dask_prep.isolation import attempt, clear_attempts
from dask_prep.kiwi_setup import KiwiPlugin, fork_workers_from_warm_kiwi, get_kiwi
from dask_prep.output import (
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
from dask_prep.partition import analyse_partition, tokenize_partition
from dask_prep.publish import write_dataset
from dask_prep.reading import (
    Document,
    InputFile,
    PartitionReader,
    PartitionSpec,
    check_strict,
    plan_partitions,
    resolve_inputs,
    scan_file,
)
from dask_prep.report import build_report, write_report
from dask_prep.report_html import write_html_report
from dask_prep.stats import AnalysisStats, TokenizeStats
from dask_prep.store_lock import StoreLock
from dask_prep.tokenization import ExampleTokenizer
from dask_prep.tokenizer_loading import PortableTokenizer, check_model


class ClusterError(RuntimeError):
    """The cluster cannot be reached or started."""


# Cores per LocalCluster worker by default: one worker process per two cores, whose Kiwi
# analyses each partition in batch on two threads. On the 2-core benchmark machine this was
# as fast as one single-threaded worker per core (within the host's noise) with ~10% less
# CPU and half the memory (one Kiwi to build, one set of imports); benchmarks/HISTORY.md.
CORES_PER_WORKER = 2


@dataclass
class ClusterOptions:
    """Where to compute. None of this changes the dataset.

    Unset, a LocalCluster has one worker per `CORES_PER_WORKER` cores, each with a Kiwi of
    that many threads. Given only `n_workers`, each worker's Kiwi gets the cores left to it;
    given only `kiwi_threads`, there is one worker per that many cores. With `scheduler`
    the workers are already there; `kiwi_threads` (default 1) sets their Kiwi's threads.
    """

    scheduler: str | None = None  # address of a running scheduler; None = a LocalCluster
    n_workers: int | None = None
    threads_per_worker: int = 1
    kiwi_threads: int | None = None  # Kiwi's own threads per worker (batch analysis when > 1)
    memory_limit: str = "auto"
    # This host only by default: the dashboard shows logs, tracebacks and task data.
    dashboard_address: str = "127.0.0.1:8787"
    worker_profile: bool = False  # distributed's statistical profiler (the dashboard's Profile page)
    extra: dict[str, Any] = field(default_factory=dict)

    def layout(self, cores: int | None = None) -> tuple[int, int]:
        """(worker processes, Kiwi threads per worker) of a LocalCluster on `cores` cores."""
        cores = cores or os.cpu_count() or 1
        if self.n_workers and self.kiwi_threads:
            return self.n_workers, self.kiwi_threads
        if self.n_workers:
            return self.n_workers, max(1, cores // self.n_workers)
        kiwi_threads = self.kiwi_threads or min(CORES_PER_WORKER, cores)
        return max(1, cores // kiwi_threads), kiwi_threads


def start_client(options: ClusterOptions, meanwhile: Callable[[], Any] | None = None) -> Any:
    """A client on a running scheduler or on a new LocalCluster of worker processes.

    `meanwhile()` runs in the calling thread while the cluster starts and its workers build
    Kiwi (seconds, during which a LocalCluster's worker leaves a core idle): the client's own
    start-up (loading the tokenizer, imports) fits there. If it raises, the client and its
    cluster are closed before the error goes on.
    """
    if meanwhile is None:
        return _start_client(options)
    with ThreadPoolExecutor(1, thread_name_prefix="dask-prep-start") as pool:
        starting = pool.submit(_start_client, options)
        try:
            meanwhile()
            return starting.result()
        except BaseException:
            if starting.exception() is None:  # waits for the start; Ctrl-C again abandons it
                stop_client(starting.result())
            raise


def stop_client(client: Any) -> None:
    """Close a client from `start_client`, and its LocalCluster if it started one.

    A client on a running scheduler (`--scheduler`) has no cluster object: that scheduler
    and its workers stay up.
    """
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def local_cluster_config(options: ClusterOptions) -> dict[str, Any]:
    """Dask settings for a LocalCluster: less housekeeping competing with Kiwi for the cores.

    distributed's defaults wake every server's event loop every 20 ms (the "tick" that
    detects a blocked loop) and sample each worker's stack every 10 ms (the statistical
    profiler, which takes the GIL from the task thread). Both cost CPU in every process while
    idle and slow a GIL-bound task beside them (measured: benchmarks/HISTORY.md). A 500-ms tick still
    reports a loop blocked for more than `distributed.admin.tick.limit` (3 s).

    distributed also starts its workers with `MALLOC_TRIM_THRESHOLD_=65536`, so that glibc
    hands freed memory back at once. Setting it makes glibc trim often and turns off its
    adaptive mmap threshold (every allocation of 128 KiB or more costs an mmap and a munmap),
    and Kiwi, which allocates per document, analysed ~10 % slower in such a worker
    (benchmarks/HISTORY.md). The workers hold no large Python data, so they keep glibc's
    defaults (a value in this process's environment is still passed on).
    """
    return {
        "distributed.admin.tick.interval": "500ms",
        "distributed.worker.profile.enabled": options.worker_profile,
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    }


def _start_client(options: ClusterOptions) -> Any:
    from distributed import Client, LocalCluster

    if options.scheduler:
        kiwi_threads = options.kiwi_threads or 1  # the workers' cores are not known here
        try:
            client = Client(options.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {options.scheduler} ({type(exc).__name__}); check that "
                "`dask scheduler` is running there and the address and port are right, or omit --scheduler "
                "to start a local cluster"
            ) from exc
    else:
        n_workers, kiwi_threads = options.layout()
        settings = local_cluster_config(options)
        if kiwi_threads == 1:  # one Kiwi built for all workers, not one each (kiwi_setup)
            settings.update(fork_workers_from_warm_kiwi() or {})
        with dask.config.set(settings):  # the worker processes get it from their nanny
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=options.threads_per_worker,
                processes=True,
                memory_limit=options.memory_limit,
                dashboard_address=options.dashboard_address,
                **options.extra,
            )
        client = Client(cluster)
        client.register_plugin(QuietWorkerShutdown())
    register_kiwi(client, kiwi_threads)
    return client


class _HeartbeatCutByClose(logging.Filter):
    """Drops the heartbeat error of a worker whose own shutdown cut that heartbeat off."""

    def __init__(self, worker: Any) -> None:
        super().__init__()
        self._worker = weakref.ref(worker)

    def filter(self, record: logging.LogRecord) -> bool:
        from distributed.core import Status

        worker = self._worker()
        closing = worker is None or worker.status in (Status.closing, Status.closed, Status.failed)
        return not (closing and record.getMessage().startswith("Failed to communicate with scheduler during heartbeat"))


class QuietWorkerShutdown(WorkerPlugin):
    """No heartbeat tracebacks from the workers of a LocalCluster while it closes.

    A worker's close tears down its connections while a heartbeat may be in flight, and
    distributed logs that at ERROR with a traceback (dask/distributed#7891): after a clean
    finish or Ctrl-C, a user would see errors that are not errors. Only that message, and
    only once the worker is closing, is dropped; every other log line is left alone.
    """

    name = "dask-prep-quiet-shutdown"

    def setup(self, worker: Any) -> None:
        # Not removed in teardown(): the worker's plugins are torn down before its connections close.
        logging.getLogger("distributed.worker").addFilter(_HeartbeatCutByClose(worker))


class StorageOptionsPlugin(WorkerPlugin):
    """`--storage-options` on every worker, late ones too, as fsspec's per-protocol defaults.

    The options travel through the scheduler like any task data; the backends' own
    configuration (AWS_* variables, credential files) stays where each host has it.
    """

    name = "dask-prep-storage-options"

    def __init__(self, by_protocol: dict[str, dict[str, Any]]) -> None:
        self.by_protocol = by_protocol

    def setup(self, worker: Any) -> None:
        storage.apply(self.by_protocol)


def register_kiwi(client: Any, kiwi_threads: int = 1) -> None:
    """Every current and future worker builds one Kiwi in its plugin `setup()`."""
    client.register_plugin(KiwiPlugin(num_threads=kiwi_threads))


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
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def _reader(config: Config) -> PartitionReader:
    return PartitionReader(config.input.text_field, config.input.id_field)


# A task sends at most one progress event per this many seconds (and one as each of its
# partitions ends): a few hundred bytes a second per worker thread, however fast it goes.
PROGRESS_INTERVAL = 1.0


class _ProgressEvents:
    """One task's progress as distributed events (`Worker.log_event`) on a topic the client follows.

    `(judged, kept)` of the partition in hand, throttled to one event per
    `PROGRESS_INTERVAL`; the client adds them up into a moving bar (`_compute`).
    """

    def __init__(self, topic: str, worker: Any = None) -> None:
        from distributed import get_worker

        self.topic = topic
        self.worker = worker if worker is not None else get_worker()
        self.partition = -1
        self.next_event = time.monotonic() + PROGRESS_INTERVAL

    def __call__(self, judged: int, kept: int) -> None:
        now = time.monotonic()
        if now >= self.next_event:
            self.next_event = now + PROGRESS_INTERVAL
            self.send(judged, kept)

    def send(self, judged: int, kept: int) -> None:
        self.worker.log_event(self.topic, {"partition": self.partition, "judged": judged, "kept": kept})


def _progress_events(topic: str | None) -> _ProgressEvents | None:
    if topic is None:
        return None
    try:
        return _ProgressEvents(topic)
    except (ImportError, ValueError):  # not on a distributed worker: nobody to tell
        return None


def _analyse(
    specs: list[PartitionSpec],
    config: Config,
    layout: Layout,
    duplicates: dict,
    reuse: bool,
    progress_topic: str | None = None,
) -> list:
    results = []
    events = _progress_events(progress_topic)
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
                    reuse=reuse,
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
    reuse: bool,
) -> list:
    results = []
    for spec in specs:
        stats = tokenize_partition(spec.index, config, layout, thresholds, tokenizer=tokenizer, reuse=reuse)
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
    try:
        from distributed import default_client

        return max(1, sum(default_client().nthreads().values()))
    except (ImportError, ValueError):
        return os.cpu_count() or 1


class Progress:
    """Receives each partition's stats as it finishes (the CLI shows a bar).

    A subclass that overrides `advance` also hears how far the partitions being analysed
    are (the workers then send progress events); one that does not costs the workers nothing.
    """

    def start(self, stage: str, partitions: int) -> None: ...

    def set_total(self, stage: str, documents: int) -> None:
        """The documents the stage will read (known from the scan), after `start`."""

    def advance(self, stage: str, partition: int, judged: int, kept: int) -> None:
        """Partition `partition` has judged and kept so many documents so far (not yet finished).

        Called from the client's event loop thread, concurrently with `update`.
        """

    def update(self, stage: str, stats: AnalysisStats | TokenizeStats) -> None: ...

    def finish(self, stage: str) -> None: ...


def _follows_partitions(progress: Progress) -> bool:
    return type(progress).advance is not Progress.advance


class Pipeline:
    """Korean corpus → entity-coreference dataset, one inspectable stage at a time."""

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
        # fsspec defaults here now, on the workers once a computation starts (`_share_storage_options`).
        self.storage_options = storage.configure(storage_options, self.inputs + [self.output_dir or ""])
        self._storage_shared_with: Any = None
        self._lock: StoreLock | None = None
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

    def _share_storage_options(self) -> None:
        """Register `--storage-options` with the workers of the current client (once per client)."""
        if not self.storage_options:
            return
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
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
            self._share_storage_options()
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
        self, duplicates: Any, reuse: bool = False, progress_topic: str | None = None
    ) -> tuple[db.Bag, db.Item]:
        """Stage 1: per-partition stats, and (cap thresholds, distinct targets) as an Item.

        With `progress_topic`, the tasks send their progress inside partitions as distributed
        events on that topic.
        """
        stats = _partition_bag(self.partitions()).map_partitions(
            _analyse, self.config, self.layout, duplicates, reuse, progress_topic
        )
        cap = self.config.entities.max_entity_freq
        summary = stats.reduction(
            functools.partial(_summaries, cap=cap),
            functools.partial(merge_summaries, cap=cap),
        )
        return stats.map(_without_summary), summary.apply(functools.partial(_cap_result, cap=cap))

    def _cap_from_stats(self, partitions: int) -> tuple[dict, int]:
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

    def tokenize(self, thresholds: Any, reuse: bool = False) -> db.Bag:
        """Stage 2: per-partition stats of the capped, tokenized output parts."""
        tokenizer = dask.delayed(self.tokenizer(), pure=True)  # sent once to each worker
        return _partition_bag(self.partitions(), reading=False).map_partitions(
            _tokenize, self.config, self.layout, thresholds, tokenizer, reuse
        )

    def check(self, *, overwrite: bool = False, resume: bool = False, tokenizer: bool = True) -> None:
        """Fail fast, before any cluster work, on inputs, tokenizer, output dir or resume.

        With `tokenizer=False` the model is only located here (a path that does not exist, or
        a hub name neither cached nor reachable, fails in seconds); the caller loads the
        tokenizer later (`tokenizer()`), e.g. while a cluster starts.
        """
        self.files()
        if tokenizer:
            self.tokenizer()
        else:
            check_model(self.config.tokenize.model)
        if self.output_dir is None:
            return
        storage.check_backend(self.output_dir)
        check_not_in_use(self.output_dir)
        if resume:
            check_resumable(self.layout, self.files(), self.config)
        else:
            check_output_dir(self.output_dir, overwrite=overwrite)

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
        self._share_storage_options()
        with hold_output_dir(self.layout.root, overwrite=overwrite) as lock:
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
        layout = self.layout
        seconds: dict[str, float] = {} if startup_seconds is None else {"startup": startup_seconds}
        start = time.perf_counter()
        if resume:  # the same partitions as the interrupted run, whatever the cluster now
            specs = self.partitions(partition_size=read_json(layout.manifest)["partition_size_used"])
        else:
            prepare_output_dir(layout.root, overwrite=overwrite)
            specs = self.partitions()
            write_manifest(
                layout, self.files(), self.config, partition_size_used=max((s.records for s in specs), default=0)
            )
        seconds["scan"] = time.perf_counter() - start
        if strict:
            check_strict(self.damaged, self.empty_files)

        t = time.perf_counter()
        duplicates = self.duplicates()
        seconds["dedup"] = time.perf_counter() - t

        t = time.perf_counter()
        clear_attempts(layout.work)  # markers of an interrupted run's partitions are not crashes
        topic = f"dask-prep-progress-{uuid.uuid4().hex}" if _follows_partitions(progress) else None
        stats_bag, cap_item = self.analyse(dask.delayed(duplicates, pure=True), reuse=resume, progress_topic=topic)
        analysed, (thresholds, distinct_targets) = _compute(
            "analyse",
            stats_bag,
            cap_item,
            progress,
            topic=topic,
            documents=sum(s.records for s in specs),
            redo_item=lambda: self._cap_from_stats(len(specs)),
        )
        if strict:
            check_strict({}, [], analysed)
        seconds["analyse"] = time.perf_counter() - t

        t = time.perf_counter()
        tokenized, _ = _compute("tokenize", self.tokenize(dask.delayed(thresholds), reuse=resume), None, progress)
        seconds["tokenize"] = time.perf_counter() - t

        def report_now() -> dict:
            return build_report(
                analysed,
                tokenized,
                distinct_targets=distinct_targets,
                capped_targets=len(thresholds),
                duplicate_texts=len(duplicates),
                seconds=seconds,
                config=self.config.to_dict(),
                inputs=self.inputs,
            )

        t = time.perf_counter()
        # Without partitions (empty input) the dataset still gets the output's columns.
        schema = None if specs else ExampleTokenizer(self.config.tokenize, self.tokenizer()).schema
        splits: dict[str, dict] = {}
        dataset_path = write_dataset(
            layout,
            [s.index for s in specs],
            self.config.tokenize.seq_len,
            lock=self._lock,
            schema=schema,
            validation_fraction=self.config.output.validation_fraction,
            description=DESCRIPTION,
            card=functools.partial(self._card, report_now(), splits),
        )
        seconds["dataset"] = time.perf_counter() - t
        seconds["total"] = time.perf_counter() - start

        report = report_now()
        report["dataset"] = dataset_path
        report["splits"] = splits
        report["damaged_files"].update(self.damaged)
        report["empty_files"] = self.empty_files
        report["duplicate_ids"] = self.duplicate_ids
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

    def _card(self, report: dict, splits_out: dict, features: Any, splits: dict[str, dict]) -> str:
        """The dataset's README.md; `splits_out` receives the split sizes for the report."""
        splits_out.update(splits)
        tokenizer = self.tokenizer()
        return card_text(
            features=features,
            splits=splits,
            name=os.path.basename(dataset_dir_name(self.config.tokenize.seq_len)),
            command=self.command
            or f"dask_prep.graph.Pipeline({self.inputs!r}, config, {self.output_dir!r}).run()  # Python API",
            config=self.config.to_dict(),
            counts=report,
            tokenizer={
                "model": self.config.tokenize.model,
                "class": tokenizer.class_name,
                "unk_token": tokenizer.unk_token,
            },
            versions=versions(),
        )


def _compute(
    stage: str,
    bag: db.Bag,
    item: Any,
    progress: Progress,
    *,
    topic: str | None = None,
    documents: int | None = None,
    redo_item: Callable[[], Any] | None = None,
) -> tuple[list, Any]:
    """Compute a per-partition stats bag (and an Item sharing its tasks), with progress.

    With `topic`, the workers' progress events on it (`_ProgressEvents`) go to
    `progress.advance` while the partitions are computed. A partition whose worker died is
    run again here (`_retry_killed`); after that the Item comes from `redo_item()` (a new
    graph) instead of a reduction that lost pieces.
    """
    try:
        from distributed import as_completed, default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    progress.start(stage, bag.npartitions)
    if documents is not None:
        progress.set_total(stage, documents)
    if client is None:
        results, value = dask.compute(bag, item)
        for stats in results:
            progress.update(stage, stats)
        progress.finish(stage)
        return results, value
    if topic is not None:  # subscribed before the tasks are submitted, so no event is missed

        def on_event(event: tuple[float, dict]) -> None:
            message = event[1]
            progress.advance(stage, message["partition"], message["judged"], message["kept"])

        client.subscribe_topic(topic, on_event)
    try:
        # One submission, unoptimised, so the partitions and the Item share their tasks.
        parts = bag.to_delayed(optimize_graph=False)
        futures = client.compute(parts + ([item] if item is not None else []), optimize_graph=False)
        part_futures = futures[: len(parts)]
        retried: dict[str, int] = {}
        # Kept as they come: a dead worker loses the results it held, and Dask computes them
        # again (or fails them, once its allowed-failures are used up) even after they arrived.
        by_part: dict[str, list] = {}
        finished = as_completed(part_futures)
        for future in finished:
            if _retry_killed(client, future, retried):
                finished.add(future)
                continue
            by_part[future.key] = future.result()
            for stats in by_part[future.key]:
                progress.update(stage, stats)
    finally:
        if topic is not None:
            client.unsubscribe_topic(topic)
    progress.finish(stage)
    results = [stats for future in part_futures for stats in by_part[future.key]]
    value = None
    if item is not None:
        from distributed import wait
        from distributed.scheduler import KilledWorker

        if not retried:
            wait(futures[-1])
        lost = bool(retried) or (futures[-1].status == "error" and isinstance(futures[-1].exception(), KilledWorker))
        if lost and redo_item is not None:
            # Scheduler retries of a reduction whose pieces died with workers can leave it
            # waiting on a failed piece forever; the Item is computed anew instead.
            client.cancel([futures[-1]])
            value = redo_item()
        else:
            value = futures[-1].result()
    return results, value


# Times the client itself runs again a partition whose worker died (`KilledWorker`, once
# distributed.scheduler.allowed-failures is used up). The next attempt finds the marker the
# dead one left and isolates each document's analysis (dask_prep.isolation), so one more
# is enough for that partition; others die beside it only when they share its worker.
CLIENT_RETRIES = 5


def _retry_killed(client: Any, future: Any, retried: dict[str, int]) -> bool:
    """Run a partition again whose worker died, instead of ending the run; whether it was."""
    from distributed.scheduler import KilledWorker

    if future.status != "error" or not isinstance(future.exception(), KilledWorker):
        return False
    if retried.get(future.key, 0) >= CLIENT_RETRIES:
        return False
    retried[future.key] = retried.get(future.key, 0) + 1
    logging.getLogger(__name__).warning(
        "dask-prep: a worker died running %s; running it again with each document analysed in isolation",
        future.key,
    )
    _retry(client, future)
    return True


def _retry(client: Any, future: Any) -> None:
    """`client.retry([future])`, which fails (KeyError) when the task that erred is one the
    client holds no future of (here: the partition's task under the future's `map`).

    The scheduler runs the erred tasks again, and their erred dependents after them; the
    client's own state of each future it holds among them is reset here.
    """
    retried = client.sync(client.scheduler.retry, keys=[future.key], client=client.id)
    for key in retried:
        state = client.futures.get(key)
        if state is not None:
            state.retry()


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
