"""Processes in tests: this environment's console scripts, process groups, waiting, free ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def console_script(name: str) -> str:
    """A console script of this interpreter's environment (not some other one on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"the `{name}` command is not installed")
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str, procs: list | None = None) -> None:
    """Poll `condition` until it holds; fail if it times out or one of `procs` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs or []:
            if proc.poll() is not None:
                raise AssertionError(f"{what}: {proc.args[:2]} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group of `proc` (started with start_new_session), if it is still there."""
    try:
        os.killpg(proc.pid, sig)  # the group id is the pid (start_new_session)
    except ProcessLookupError:
        pass


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dask_worker_args(address: str, name: str, tmp_path: Path) -> tuple[list[str], str, Path]:
    """Arguments of `spawn` for one `dask worker` process."""
    home = tmp_path / "workers" / name
    home.mkdir(parents=True)
    args = [
        console_script("dask"),
        "worker",
        address,
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--host",
        "127.0.0.1",
        "--name",
        name,
        "--memory-limit",
        "2GiB",
        "--no-dashboard",
        "--local-directory",
        str(home),
        "--death-timeout",
        "60",  # a worker whose scheduler is gone exits by itself
    ]
    return args, f"{name}.log", home


def start_dask_scheduler(spawn: Callable[..., Any], scheduler_file: Path, log_name: str) -> tuple[Any, str]:
    """A `dask scheduler` started with `spawn` (conftest's fixture), once it wrote its file: (process, address)."""
    scheduler = spawn(dask_scheduler_args(scheduler_file), log_name)
    wait_for(scheduler_file.exists, 90, "the scheduler file", [scheduler])
    return scheduler, json.loads(scheduler_file.read_text())["address"]


def dask_scheduler_args(scheduler_file: Path) -> list[str]:
    """Arguments of `spawn` for a `dask scheduler` on 127.0.0.1 that writes its address to `scheduler_file`."""
    return [console_script("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0"] + [
        "--dashboard-address",
        "127.0.0.1:0",
        "--scheduler-file",
        str(scheduler_file),
    ]
