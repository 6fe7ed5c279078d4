"""Live progress: tqdm bars on an interactive terminal, nothing with --quiet or in CI logs.

The CLI runs as a real subprocess against the session cluster (`--scheduler`), once with
a pseudo-terminal as its terminal, once with --quiet on the terminal, and once with pipes
as CI has them. Every run still ends with the summary table.
"""

from __future__ import annotations

import subprocess

import pytest
from support.terminal import BAR_REDRAW, CLI_TIMEOUT, cli_command, run_in_pty, terminal_env


@pytest.fixture
def cli(client, shard0, tokenizer_dir, tmp_path):
    def command(name: str, *extra: str) -> list[str]:
        return cli_command(shard0, tokenizer_dir, client.scheduler.address, tmp_path / name, *extra)

    return command


def test_progress_bars_on_a_terminal(cli):
    code, output = run_in_pty(cli("tty"))
    assert code == 0, output[-3000:]
    # tqdm bars: the stage, documents per second and the running kept count, redrawn with \r.
    assert "analyse" in output and "doc/s" in output and "kept=" in output, output[-3000:]
    assert "tokenize" in output and "part/s" in output
    assert BAR_REDRAW.search(output)
    assert "dask dashboard:" in output
    assert "examples written" in output  # the summary table


def test_quiet_on_a_terminal(cli):
    code, output = run_in_pty(cli("quiet", "--quiet"))
    assert code == 0, output[-3000:]
    assert "doc/s" not in output and "kept=" not in output and "part/s" not in output, output[-3000:]
    assert "dask dashboard:" not in output
    assert not BAR_REDRAW.search(output)
    assert "examples written" in output


def test_no_bars_in_ci_logs(cli):
    """With pipes (a CI log), tqdm switches itself off: no bar lines at all."""
    result = subprocess.run(cli("pipes"), capture_output=True, text=True, env=terminal_env(), timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    combined = result.stdout + result.stderr
    assert "doc/s" not in combined and "kept=" not in combined and "part/s" not in combined, combined[-3000:]
    assert not BAR_REDRAW.search(combined)
    assert "examples written" in result.stdout
