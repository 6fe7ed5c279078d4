"""One document that crashes or hangs Kiwi costs that document, not the run.

Kiwi is native code: on odd input it can abort the process (a segfault, an uncaught
`std::length_error`) or never return. Neither can be caught in Python, so stage 1 guards
each partition in two ways:

- An *attempt marker* (`DIR/_work/attempts/analyse-NNNNN`) is written before a partition
  is analysed and removed after, whatever Python raised. A marker that is already there
  when a partition starts means that an earlier attempt's process died while running it.
  That partition is then analysed *in isolation*: its documents go to Kiwi one at a time
  in a child process forked from the worker; a child that dies names its document
  (`analysis_crash`), a child that does not answer within `input.analysis_timeout` seconds
  is killed and names its document (`analysis_timeout`), and a new child goes on with the
  next one. Every other document gets the analysis it would have had in the worker.
- A *watchdog* in each worker process: an analysis call that has not returned within the
  bound is a hang, and the watchdog ends the worker process (its nanny starts another),
  so that the hang becomes a death the marker records.

Who retries the partition does not decide anything: the scheduler (while
`distributed.scheduler.allowed-failures` lasts) or the client (`compute.compute_stage`, after a
`KilledWorker`) — either way the next attempt finds the marker and isolates.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import pickle
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, Pipe
from typing import Any, NamedTuple

from dask_prep.io import storage
from dask_prep.workers import current_worker

logger = logging.getLogger(__name__)

ATTEMPTS_DIR = "attempts"
CRASH = "analysis_crash"
TIMEOUT = "analysis_timeout"
# Time a new child may take to start and (if it cannot use the worker's Kiwi) build and
# warm its own Kiwi, before its first document's bound starts.
CHILD_START_SECONDS = 300.0


class KiwiToken(NamedTuple):
    """What the filters and the entity step read of a Kiwi token (Kiwi's own cannot be pickled)."""

    form: str
    tag: str
    start: int
    len: int


class AnalysisFailed(Exception):
    """A document whose analysis killed (`analysis_crash`) or hung (`analysis_timeout`) its process."""

    def __init__(self, rejection: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = rejection


# ---- attempt markers ---------------------------------------------------------------------


def attempts_dir(work_dir: str) -> str:
    return os.path.join(work_dir, ATTEMPTS_DIR)


def clear_attempts(work_dir: str) -> None:
    """Forget the markers of an earlier run (a new run or a --resume starts trusting again)."""
    storage.remove(attempts_dir(work_dir))


@contextmanager
def attempt(
    work_dir: str, stage: str, index: int, run: str | None = None, guard: storage.CommitGuard | None = None
) -> Iterator[bool]:
    """Mark partition `index` as running; yields whether an attempt of this run died running it.

    Once one has, every later attempt in the run is told so (a `.died` file stays beside the
    marker): a finished partition whose result a dead worker held is computed again, and
    that must not meet its crashing document outside isolation. `run` (the run's token) is in
    the marker's name, so a task of an earlier run never removes or fakes this run's markers;
    `guard` fences the markers' writes (output/fencing.py). A partition that a store error
    failed keeps its marker: removing it would wait on that store again, and the run stops.
    """
    name = f"{stage}-{index:05d}" + (f".{run}" if run else "")
    path = os.path.join(attempts_dir(work_dir), name)
    died_before = storage.exists(path) or storage.exists(path + ".died")
    if died_before:
        storage.write_text(path + ".died", "", guard=guard)
    storage.write_json({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, path, guard=guard)
    try:
        yield died_before
    except BaseException as exc:
        if not storage.is_store_error(exc):  # a store that failed the partition would fail this too, slowly
            storage.remove(path)
        raise
    storage.remove(path)


# ---- the watchdog (normal mode, in a worker) ------------------------------------------------


class _Watchdog:
    """Ends this process when an analysis call has run longer than its bound."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: dict[int, tuple[float, float]] = {}  # thread id -> (started, bound)
        self._thread: threading.Thread | None = None

    def begin(self, bound: float) -> None:
        with self._lock:
            self._busy[threading.get_ident()] = (time.monotonic(), bound)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="dask-prep-analysis-watchdog", daemon=True)
                self._thread.start()

    def end(self) -> None:
        with self._lock:
            self._busy.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self._lock:
                late = [now - started for started, bound in self._busy.values() if now - started > bound]
            if late:
                logger.error(
                    "dask-prep: a Kiwi analysis has not returned for %.0f s (input.analysis_timeout); ending this "
                    "worker process so that the partition is analysed again with each document in isolation",
                    max(late),
                )
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os.kill(os.getpid(), signal.SIGKILL)


_watchdog = _Watchdog()


def in_worker() -> bool:
    return current_worker() is not None


def watched(analyse: Callable[[list[str]], Iterator[Any]], bound: float) -> Callable[[list[str]], Iterator[Any]]:
    """`analyse` whose every call into Kiwi is bounded by the watchdog (in a worker only).

    Outside a distributed worker (a notebook's own process) nothing would restart the
    process, so there a hang is left to the user.
    """
    if not in_worker() or not bound:
        return analyse

    def run(texts: list[str]) -> Iterator[Any]:
        results = iter(analyse(texts))
        while True:
            _watchdog.begin(bound)
            try:
                item = next(results)
            except StopIteration:
                return
            finally:
                _watchdog.end()
            yield item

    return run


# ---- isolation: one document at a time in a forked child -----------------------------------


def _set_parent_death_signal() -> None:
    """The child dies with the worker (Linux), instead of hanging on as an orphan."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _child(kiwi: Any, model_type: str | None, texts: list[str], out: Connection) -> None:
    """In the forked child: analyse `texts` in order, sending one answer per text."""
    _set_parent_death_signal()
    try:  # a crash here is expected and reported: no core dump of a worker-sized process
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # pragma: no cover
        pass
    faulthandler.disable()  # the crash is reported by the parent, with the document's file:line
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if getattr(kiwi, "num_workers", 1) != 1:
        # A Kiwi with a thread pool does not survive a fork: the child builds its own.
        from dask_prep.analysis.kiwi import _new_kiwi

        kiwi = _new_kiwi(1, model_type)
    out.send(("ready", None))
    for text in texts:
        try:
            tokens = [(t.form, t.tag, t.start, t.len) for t in kiwi.tokenize(text)]
            answer = ("tokens", tokens)
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}")
        out.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


class _ChildProcess:
    def __init__(self, kiwi: Any, model_type: str | None, texts: list[str]) -> None:
        receive, send = Pipe(duplex=False)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the worker's code
            code = 0
            try:
                receive.close()
                _child(kiwi, model_type, texts, send)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        send.close()
        self.pid = pid
        self.connection = receive

    def receive(self, timeout: float) -> tuple[str, Any]:
        """("tokens"|"error"|"ready", value), ("timeout", None) or ("died", how)."""
        try:
            if not self.connection.poll(timeout):
                return "timeout", None
            data = self.connection.recv_bytes()
        except (EOFError, OSError):
            return "died", self.end()
        return pickle.loads(data)

    def end(self) -> str:
        """Kill (if alive) and reap the child; how it ended."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(self.pid, 0)
        self.connection.close()
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                return f"killed by {signal.Signals(number).name}"
            except ValueError:
                return f"killed by signal {number}"
        return f"exit code {os.WEXITSTATUS(status)}"


def analyser_for(kiwi: Any, bound: float, isolate: bool) -> Callable[[list[str]], Iterator[Any]]:
    """Stage 1's `analyse(texts)`: in the worker under the watchdog, or each text isolated."""
    if isolate:
        return isolated_analyser(kiwi, bound)
    from dask_prep.analysis.filters import kiwi_analyser

    return watched(kiwi_analyser(kiwi), bound)


def _plugin_model_type() -> str | None:
    from dask_prep.analysis.kiwi import PLUGIN_NAME

    worker = current_worker()
    return None if worker is None else getattr(worker.plugins.get(PLUGIN_NAME), "model_type", None)


def isolated_analyser(kiwi: Any, bound: float, model_type: str | None = None) -> Callable[[list[str]], Iterator[Any]]:
    """`analyse(texts)` (as `filters.kiwi_analyser`) with each text analysed in a forked child.

    Yields Kiwi's tokens (as `KiwiToken`), the Exception Kiwi raised, or `AnalysisFailed`
    for a text whose child died or did not answer within `bound` seconds.
    """
    model_type = model_type if model_type is not None else _plugin_model_type()

    def analyse(texts: list[str]) -> Iterator[Any]:
        done = 0
        while done < len(texts):
            child = _ChildProcess(kiwi, model_type, texts[done:])
            kind, value = child.receive(CHILD_START_SECONDS)
            if kind != "ready":
                how = child.end() if kind == "timeout" else value
                raise RuntimeError(f"the isolated Kiwi process did not start ({how})")
            while done < len(texts):
                kind, value = child.receive(bound)
                if kind == "tokens":
                    yield [KiwiToken(*t) for t in value]
                elif kind == "error":
                    yield RuntimeError(value)
                else:
                    how = child.end() if kind == "timeout" else value
                    reason = TIMEOUT if kind == "timeout" else CRASH
                    what = f"no answer in {bound:g} s" if kind == "timeout" else f"its process died ({how})"
                    logger.warning("dask-prep: Kiwi analysis of one document failed: %s -> %s", what, reason)
                    done += 1
                    yield AnalysisFailed(reason, what)
                    break
                done += 1
            else:
                child.end()

    return analyse
