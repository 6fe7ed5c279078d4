"""Helpers shared by the benchmark scripts: the Kiwi document set, scaled corpora,
process-tree sampling and sizes on disk. Plain functions, no Dask."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from dask_prep.analysis.filters import FilterChain
from dask_prep.config import Config
from dask_prep.dedup.exact import fingerprints, mark_duplicates
from dask_prep.document import Document
from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


# ---- the documents that reach Kiwi ----------------------------------------------------


@dataclass
class KiwiSet:
    read: int  # every record of the corpus
    texts: list[str]  # the documents that pass the cheap rules, in input order

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts)


def kiwi_documents(inputs: list[str], config: Config) -> KiwiSet:
    """Exactly what the pipeline sends to Kiwi with `--full-analysis`: the same reader, dedup
    and cheap rules, every candidate whole (the Kiwi limit is defined on these, in both
    modes, so that its ratio shows what progressive analysis saves).

    Uses `FilterChain` with a stand-in analyser that records the texts instead of
    analysing them, so the selection is the pipeline's own decision, not a copy of it.
    Duplicates are found as the pipeline does (smallest doc id of each repeated
    fingerprint survives), here in one process.
    """
    files = resolve_inputs(inputs)
    counts = [scan_file(f).records for f in files]
    specs = plan_partitions(files, counts, config.input.partition_size, config.input.max_samples)
    keep: dict[int, str] = {}
    if config.input.dedup:
        seen: dict[int, tuple[str, int]] = {}
        for spec in specs:
            docs, _ = read_partition(spec, config.input.text_field, config.input.id_field)
            for fp, doc_id in fingerprints(docs):
                first, count = seen.get(fp, (doc_id, 0))
                seen[fp] = (min(first, doc_id), count + 1)
        keep = {fp: doc_id for fp, (doc_id, count) in seen.items() if count > 1}
    chain = FilterChain(config, progressive=False)
    texts: list[str] = []
    read = 0
    for spec in specs:
        docs, _ = read_partition(spec, config.input.text_field, config.input.id_field)
        mark_duplicates(docs, keep)
        read += len(docs)
        texts.extend(texts_sent_to_kiwi(chain, docs))
    return KiwiSet(read=read, texts=texts)


def texts_sent_to_kiwi(chain: FilterChain, docs: list[Document]) -> list[str]:
    """The texts `chain.run(docs, ...)` gives Kiwi, recorded instead of analysed.

    The documents are judged as the pipeline judges them (cheap rules set `rejected_by`).
    For whole documents give a chain made with `progressive=False`: a progressive chain
    would record a first chunk and then, as a chunk Kiwi fails on, the whole text.
    """
    sent: list[str] = []

    def record(batch: list[str]) -> list[Exception]:
        sent.extend(batch)
        # An Exception per text makes the chain stop there (no analysis rule runs).
        return [RuntimeError("not analysed")] * len(batch)

    list(chain.run(docs, record))
    return sent


def split_balanced(texts: list[str], parts: int) -> list[list[str]]:
    """Split texts into `parts` lists of nearly equal characters (largest first, greedy)."""
    bins: list[list[str]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for text in sorted(texts, key=len, reverse=True):
        i = loads.index(min(loads))
        bins[i].append(text)
        loads[i] += len(text)
    return bins


# ---- scaled corpora --------------------------------------------------------------------


def write_scaled_corpus(corpus: str, dest: str, copies: int, id_field: str = "id") -> str:
    """`copies` rewritten copies of every shard, each document with a new id.

    Copy k lives in dest/r{k}/ and its ids are prefixed `r{k}-`; lines that are not
    JSON objects are copied unchanged so malformed input scales too.
    """
    import zstandard

    files = sorted(p for p in Path(corpus).iterdir() if p.name.endswith((".jsonl.zst", ".jsonl")))
    if not files:
        raise SystemExit(f"no .jsonl/.jsonl.zst shards in {corpus}")
    for k in range(copies):
        out_dir = Path(dest) / f"r{k}"
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            out = out_dir / path.name
            if out.exists():
                continue
            tmp = out.with_suffix(out.suffix + ".tmp")
            with open(path, "rb") as raw_in, open(tmp, "wb") as raw_out:
                reader = _lines(path, raw_in)
                writer = (
                    zstandard.ZstdCompressor(level=3).stream_writer(raw_out) if path.name.endswith(".zst") else raw_out
                )
                for line in reader:
                    writer.write(_with_new_id(line, f"r{k}-", id_field))
                if writer is not raw_out:
                    writer.flush(zstandard.FLUSH_FRAME)
            os.replace(tmp, out)
    return dest


def _lines(path: Path, handle: Any):
    import io

    import zstandard

    if path.name.endswith(".zst"):
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(handle), buffer_size=1 << 20)
    return handle


def _with_new_id(line: bytes, prefix: str, id_field: str) -> bytes:
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    record[id_field] = prefix + str(record.get(id_field, ""))
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


# ---- measuring a run -------------------------------------------------------------------


@dataclass
class TreeSample:
    wall: float = 0.0
    peak_rss: int = 0  # max over samples of the RSS summed over the whole process tree
    peak_processes: int = 0
    cpu_seconds: float = 0.0  # user+system of the tree (waited for, or last sampled)
    returncode: int = 0
    samples: int = 0
    rss_timeline: list[tuple[float, int]] = field(default_factory=list)
    # pid -> [parent pid, last seen CPU seconds, peak RSS]: who used what in the tree
    per_process: dict[int, list] = field(default_factory=dict)


# Linux lists each thread's children in /proc (since 3.5; CONFIG_PROC_CHILDREN).
_KERNEL_LISTS_CHILDREN = os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children")


def _descendants(pid: int) -> list[int]:
    """Every descendant of `pid`, read from the kernel's per-thread child lists.

    psutil's `children()` reads the status of every process on the host to find them: 6.6 ms
    a call during a 2-worker run here, against 1.1 ms for these files, which hold just the
    tree. With them the sampler's own CPU fell from 2.7 % to 1.1 % of a core, CPU taken from
    the run being measured whenever that run keeps every core busy. Without those files
    (another OS, an old kernel), psutil's way.
    """
    if not _KERNEL_LISTS_CHILDREN:
        try:
            return [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:  # the process has exited
            return []
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:  # the process has exited
            continue
        for tid in threads:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:  # the thread or process has exited
                continue
            found += kids
            stack += kids
    return found


class TreeSampler:
    """Samples a process and all its descendants every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.result = TreeSample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = time.perf_counter()
        # Processes stay known between samples (a new psutil.Process reads /proc to identify
        # itself); RSS and CPU are read from every member each time.
        self._known: dict[int, psutil.Process] = {}

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> TreeSample:
        self._stop.set()
        self._thread.join()
        return self.result

    def _members(self) -> list[psutil.Process]:
        procs = [self.root]
        for pid in _descendants(self.root.pid):
            if pid not in self._known:
                try:
                    self._known[pid] = psutil.Process(pid)
                except psutil.Error:
                    continue
            procs.append(self._known[pid])
        return procs

    def _loop(self) -> None:
        while not self._stop.is_set():
            total, alive = 0, 0
            for proc in self._members():
                try:
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        cpu = proc.cpu_times()
                        slot = self.result.per_process.setdefault(proc.pid, [proc.ppid(), 0.0, 0])
                    slot[1] = cpu.user + cpu.system
                    slot[2] = max(slot[2], rss)
                    total += rss
                    alive += 1
                except psutil.Error:
                    continue
            r = self.result
            r.samples += 1
            if total > r.peak_rss:
                r.peak_rss = total
            r.peak_processes = max(r.peak_processes, alive)
            r.rss_timeline.append((round(time.perf_counter() - self._t0, 2), total))
            self._stop.wait(self.interval)


def run_measured(cmd: list[str], *, log_path: str, env: dict | None = None, interval: float = 0.2) -> TreeSample:
    """Run `cmd` to completion, sampling its process tree; stdout+stderr go to `log_path`."""
    # Every process imports this checkout's dask_prep, not whichever one pip installed.
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        sampler = TreeSampler(proc.pid, interval).start()
        proc.wait()
        result = sampler.stop()
    result.wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Children's CPU reaches RUSAGE_CHILDREN once waited for, transitively: nannies wait
    # their workers, the Pool joins its children. Processes nobody waits for (a forkserver
    # and the workers forked from it, left when the CLI ends with os._exit) never get
    # there: their CPU as last sampled counts instead, when that is more.
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.cpu_seconds = max(waited, sum(cpu for _, cpu, _ in result.per_process.values()))
    result.returncode = proc.returncode
    return result


def dir_bytes(path: str) -> int:
    """Apparent size of every file under `path`."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def python() -> str:
    return sys.executable


def load_average() -> float:
    return os.getloadavg()[0]
