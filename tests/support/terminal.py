"""A CLI run on a real pseudo-terminal, as a person at a terminal runs it (bars, colours, Ctrl-C)."""

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

CLI_TIMEOUT = 600  # seconds per CLI run; a hung run fails instead of hanging the suite
# A carriage return that is not a terminal's line ending: a progress bar redrawing itself.
BAR_REDRAW = re.compile(r"\r(?!\n)")


def cli_command(shard: Path, tokenizer: Path, scheduler: str, output: Path, *extra: str) -> list[str]:
    """`python -m dask_prep run` on 90 documents of `shard` in partitions of 30, on `scheduler`."""
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


def terminal_env() -> dict[str, str]:
    """This environment, with a terminal type and transformers' warnings off."""
    return {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TERM": "xterm"}


def run_in_pty(args: list[str]) -> tuple[int, str]:
    """Run with a pseudo-terminal as stdin, stdout and stderr; returns (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=terminal_env(), start_new_session=True, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + CLI_TIMEOUT
    try:
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"the CLI did not finish in {CLI_TIMEOUT} s; output so far:\n{b''.join(chunks)[-2000:]!r}")
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
