"""Issue 29: `dask-prep run` in a real terminal, as a user starts and stops it.

The CLI runs in a pseudo-terminal that is its controlling terminal, in a session of its
own, and starts its own LocalCluster (worker processes in the terminal's foreground process
group, as at a shell prompt). Ctrl-C is the byte the terminal turns into SIGINT for that
whole group, not a signal sent to one process.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]  # `dask-prep run` processes with their own cluster

CTRL_C = b"\x03"
TIMEOUT = 300  # seconds for a run to end after Ctrl-C, or to get as far as the test needs
# "analyse:   0%|   | 0/2000 [00:00<?, ?doc/s]": the analyse bar with its total.
ANALYSE_BAR = re.compile(rb"analyse:\s+\d+%\|")
INTERRUPTED = re.compile(
    r"dask-prep: interrupted; finished partitions are kept in \S+\. Run the same command with --resume to finish\."
)


class Terminal:
    """A command in a pseudo-terminal that is its controlling terminal; what it prints, when."""

    def __init__(self, args: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {**os.environ, "TERM": "xterm", "TRANSFORMERS_VERBOSITY": "error"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,  # a session whose controlling terminal is this one
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.output = b""
        self.first_output: float | None = None  # seconds after the start
        self.closed = False

    def read_until(self, done, timeout: float = TIMEOUT) -> bool:
        """Read until `done(output)` or the terminal closes; whether `done` held."""
        deadline = time.monotonic() + timeout
        while not done(self.output):
            if self.closed or time.monotonic() > deadline:
                return False
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                data = b""
            if not data:
                self.closed = True
                continue
            if self.first_output is None:
                self.first_output = time.monotonic() - self.started
            self.output += data
        return True

    def press(self, keys: bytes) -> int:
        """Type `keys`; returns where the output stood then."""
        at = len(self.output)
        os.write(self.master, keys)
        return at

    def finish(self) -> int:
        self.read_until(lambda _: False)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        os.close(self.master)


@pytest.fixture
def terminal():
    opened: list[Terminal] = []

    def start(args: list[str]) -> Terminal:
        opened.append(Terminal(args))
        return opened[-1]

    yield start
    for term in opened:
        term.close()


def _run_command(shard0, tokenizer_dir, output, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dask_prep",
        "run",
        str(shard0),
        "--model",
        str(tokenizer_dir),
        "--output-dir",
        str(output),
        "--dashboard-address",
        "127.0.0.1:0",  # a free port: no "port in use" warning beside other clusters
        *extra,
    ]


def test_ctrl_c_prints_one_line_and_exits_130(terminal, shard0, tokenizer_dir, tmp_path):
    # 2,000 documents: tens of seconds of analysis, interrupted a second after its bar appears.
    term = terminal(_run_command(shard0, tokenizer_dir, tmp_path / "out", "--max-samples", "2000"))
    assert term.read_until(lambda out: ANALYSE_BAR.search(out) is not None), term.output[-3000:]
    term.read_until(lambda _: False, timeout=1.0)
    assert not term.closed, f"the run ended before it could be interrupted: {term.output[-3000:]!r}"
    pressed_at = term.press(CTRL_C)
    code = term.finish()
    after = term.output[pressed_at:].decode("utf-8", errors="replace")
    # The terminal echoes ^C; anything printed after it was printed after the interrupt.
    after = after.split("^C", 1)[-1]
    lines = [line for line in re.split(r"\r\n|\n|\r", after) if line.strip()]
    assert code == 130, after
    assert len(lines) == 1 and INTERRUPTED.fullmatch(lines[0].strip()), after


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
FIRST_LINE_SECONDS = 2.0  # the acceptance line: something is printed within 2 s of the start
STEPS = [  # each step's line, in order, as it begins
    "dask-prep: checking the input, the model and the output directory",
    "dask-prep: starting a local Dask cluster",
    "dask-prep: scanning 1 file",
    "dask-prep: finding duplicates (exact and near) among 40 documents",
    "dask-prep: analysing 40 documents in",
    "dask-prep: tokenizing the examples of",
    "dask-prep: writing the dataset",
]


def test_a_run_names_each_step_at_once_and_the_scan_and_dedup_have_bars(terminal, tmp_path):
    """The repository's own sample, so that this runs in a fresh clone too."""
    term = terminal(_run_command(REPO / "sample" / "ko_sample.jsonl", REPO / "sample" / "tokenizer", tmp_path / "out"))
    assert term.read_until(lambda out: b"\n" in out, timeout=60), term.output
    first_line = term.output.decode("utf-8", errors="replace").splitlines()[0]
    code = term.finish()
    output = term.output.decode("utf-8", errors="replace")
    assert code == 0, output[-3000:]
    print(f"first line after {term.first_output:.2f} s: {first_line!r}")
    assert term.first_output < FIRST_LINE_SECONDS, (term.first_output, first_line)
    assert first_line.startswith(STEPS[0]), first_line
    positions = [output.find(step) for step in STEPS]
    assert -1 not in positions and positions == sorted(positions), list(zip(STEPS, positions, strict=True))
    frames = re.split(r"[\r\n]", output)
    for stage, unit in (("scan", "task"), ("dedup", "task")):
        bars = [f for f in frames if re.match(rf"\s*{stage}: +\d+%\|", f)]
        assert bars and f"{unit}/s" in bars[-1] and bars[-1].lstrip().startswith(f"{stage}: 100%"), (stage, bars)
