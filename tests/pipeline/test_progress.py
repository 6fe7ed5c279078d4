"""Live progress: tqdm bars on an interactive terminal, nothing with --quiet or in CI logs.

The CLI runs as a real subprocess against the session cluster (`--scheduler`), once with
a pseudo-terminal as its terminal, once with --quiet on the terminal, and once with pipes
as CI has them. Every run still ends with the summary table.
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
from pathlib import Path

import pytest

TIMEOUT = 600  # seconds per CLI run; a hung run fails instead of hanging the suite
# A carriage return that is not a terminal's line ending: a progress bar redrawing itself.
BAR_REDRAW = re.compile(r"\r(?!\n)")


def _command(shard: Path, tokenizer: Path, scheduler: str, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dask_prep",
        "run",
        str(shard),
        "--model",
        str(tokenizer),
        "--max-samples",
        "90",
        "--partition-size",
        "30",  # several partitions, so the bars move
        "--scheduler",
        scheduler,
        "--output-dir",
        str(output),
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TERM": "xterm"}


def _run_in_pty(args: list[str]) -> tuple[int, str]:
    """Run with a pseudo-terminal as stdin, stdout and stderr; returns (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=_env(), start_new_session=True, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"the CLI did not finish in {TIMEOUT} s; output so far:\n{b''.join(chunks)[-2000:]!r}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        os.close(master)
    return returncode, b"".join(chunks).decode("utf-8", errors="replace")


@pytest.fixture
def cli(client, shard0, tokenizer_dir, tmp_path):
    def command(name: str, *extra: str) -> list[str]:
        return _command(shard0, tokenizer_dir, client.scheduler.address, tmp_path / name, *extra)

    return command


def test_progress_bars_on_a_terminal(cli):
    code, output = _run_in_pty(cli("tty"))
    assert code == 0, output[-3000:]
    # tqdm bars: the stage, documents per second and the running kept count, redrawn with \r.
    assert "analyse" in output and "doc/s" in output and "kept=" in output, output[-3000:]
    assert "tokenize" in output and "part/s" in output
    assert BAR_REDRAW.search(output)
    assert "dask dashboard:" in output
    assert "examples written" in output  # the summary table


def test_quiet_on_a_terminal(cli):
    code, output = _run_in_pty(cli("quiet", "--quiet"))
    assert code == 0, output[-3000:]
    assert "doc/s" not in output and "kept=" not in output and "part/s" not in output, output[-3000:]
    assert "dask dashboard:" not in output
    assert not BAR_REDRAW.search(output)
    assert "examples written" in output


def test_no_bars_in_ci_logs(cli):
    """With pipes (a CI log), tqdm switches itself off: no bar lines at all."""
    result = subprocess.run(cli("pipes"), capture_output=True, text=True, env=_env(), timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    combined = result.stdout + result.stderr
    assert "doc/s" not in combined and "kept=" not in combined and "part/s" not in combined, combined[-3000:]
    assert not BAR_REDRAW.search(combined)
    assert "examples written" in result.stdout
