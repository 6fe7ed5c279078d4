"""Issue 25: a CLI that behaves like its neighbours, and models that fail fast and quietly.

--version, defaults in --help, --verbose/--quiet before or after the subcommand, usage errors
in the user's words, DASK_SCHEDULER_ADDRESS, and a hub name that cannot be had offline
failing in seconds with one line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.processes import closed_port

pytestmark = pytest.mark.cluster  # `dask-prep` processes, as a user runs them

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "dask_prep", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_version():
    import dask_prep

    result = _cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"dask-prep {dask_prep.__version__}"


def _option_actions(parser: argparse.ArgumentParser):
    """(subcommand path, action) of every option of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for path, inner in _option_actions(sub):
                    yield f"{name} {path}".strip(), inner
        else:
            yield "", action


def test_every_option_has_help_that_shows_its_default():
    from dask_prep.cli.args import HelpFormatter, build_parser

    parser = build_parser()
    formatter = HelpFormatter("dask-prep")
    for path, action in _option_actions(parser):
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = formatter._get_help_string(action) or ""
        assert action.help, (path, action.option_strings)
        assert "default" in text or (action.required and "required" in text), (path, action.option_strings, text)
    run_help = _cli("run", "--help").stdout
    assert "kakaobank/kf-deberta-" in run_help  # the default model
    assert "DASK_SCHEDULER_ADDRESS" in run_help
    for option in ("--output-dir", "--seq-len", "--text-field", "--id-field"):
        line = next(line for line in run_help.splitlines() if line.strip().startswith(option))
        assert len(line.split()) > 2, line  # the option, its metavar and help beside them


@pytest.mark.parametrize(
    "argv",
    [
        ["--verbose", "--quiet", "run", "in.jsonl", "--output-dir", "out"],
        ["run", "in.jsonl", "--output-dir", "out", "--verbose", "--quiet"],
        ["--verbose", "run", "in.jsonl", "--quiet", "--output-dir", "out"],
        ["--quiet", "presets", "list", "--verbose"],
    ],
)
def test_verbose_and_quiet_before_or_after_the_subcommand(argv):
    from dask_prep.cli.args import build_parser

    args = build_parser().parse_args(argv)
    assert args.verbose is True and args.quiet is True


def test_no_flag_given_means_off():
    from dask_prep.cli.args import build_parser

    args = build_parser().parse_args(["run", "in.jsonl", "--output-dir", "out"])
    assert args.verbose is False and args.quiet is False


def test_verbose_after_run_takes_effect(tmp_path):
    result = _cli("run", str(tmp_path / "missing.jsonl"), "--output-dir", str(tmp_path / "out"), "--verbose")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "InputError" in result.stderr


@pytest.mark.parametrize(
    ("argv", "names"),
    [([], "{run,derive,presets}"), (["presets"], "{list,show}"), (["presets", "show"], "NAME")],
)
def test_usage_errors_name_what_the_user_types(argv, names):
    result = _cli(*argv)
    assert result.returncode == 2
    assert f"the following arguments are required: {names}" in result.stderr, result.stderr
    assert "command" not in result.stderr.replace("commands", ""), result.stderr


def test_dask_scheduler_address_is_used_without_scheduler(shard0, tokenizer_dir, tmp_path, monkeypatch):
    from dask_prep.cli.args import build_parser

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.1:8786")
    base = ["run", "in.jsonl", "--output-dir", "out"]
    assert build_parser().parse_args(base).scheduler == "tcp://10.0.0.1:8786"
    assert build_parser().parse_args([*base, "--scheduler", "tcp://127.0.0.1:1"]).scheduler == "tcp://127.0.0.1:1"
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    assert build_parser().parse_args(base).scheduler is None

    address = f"tcp://127.0.0.1:{closed_port()}"
    result = _cli(
        "run",
        str(shard0),
        "--model",
        str(tokenizer_dir),
        "--output-dir",
        str(tmp_path / "out"),
        env={"DASK_SCHEDULER_ADDRESS": address},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("dask-prep: error:")
    ], result.stderr
    assert f"cannot reach the Dask scheduler at {address}" in result.stderr


def _without_hub_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HF_")}


def test_a_hub_name_without_network_fails_in_seconds_with_one_line(shard0, tmp_path):
    """No HF_HUB_OFFLINE, the hub unreachable (a closed port on 127.0.0.1), an empty cache."""
    env = {
        **_without_hub_settings(),
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    args = [sys.executable, "-m", "dask_prep", "run", str(shard0), "--model", "kakaobank/kf-deberta-base"]
    started = time.monotonic()
    result = subprocess.run(
        [*args, "--output-dir", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120, env=env
    )
    seconds = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) <= 2, result.stderr
    assert seconds < 10, f"{seconds:.1f} s"  # the acceptance line's bound (a failure, not a speed figure)
    for part in ["kakaobank/kf-deberta-base", "not a local directory", "cache", "cannot be reached", "network"]:
        assert part in lines[0], (part, lines[0])
    assert not (tmp_path / "out").exists()


def test_a_mistyped_relative_path_is_a_path_not_a_hub_name(shard0, tmp_path):
    env = {**_without_hub_settings(), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    # ./sample exists in the repository, so sample/tokenizr is a path (a typo of sample/tokenizer).
    result = _cli("run", str(shard0), "--model", "sample/tokenizr", "--output-dir", str(tmp_path / "o"), env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "'sample/tokenizr': no such directory" in result.stderr


def test_what_looks_like_a_path(tmp_path, monkeypatch):
    from dask_prep.coref.tokenizer import looks_like_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert looks_like_path("./tok") and looks_like_path("~/tok") and looks_like_path("/abs/tok")
    assert looks_like_path("models/tok") and looks_like_path("models/tok/")
    assert not looks_like_path("kakaobank/kf-deberta-base")
    assert not looks_like_path("bert-base-uncased")


def test_a_cached_model_loads_offline_when_the_hub_is_unreachable(tokenizer_dir, tmp_path):
    """In the cache and the hub unreachable: loaded from the cache, without retries or warnings."""
    import shutil

    revision = "0" * 40
    repo = tmp_path / "hub" / "models--someone--tok"
    shutil.copytree(tokenizer_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    # As a real download records them: files the hub said the repository does not have.
    absent = repo / ".no_exist" / revision
    absent.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "added_tokens.json", "chat_template.jinja", "chat_template.json"):
        if not (repo / "snapshots" / revision / name).exists():
            (absent / name).touch()
    for name in ("processor_config.json", "preprocessor_config.json"):
        (absent / name).touch()
    env = {
        **_without_hub_settings(),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
        "HF_HUB_VERBOSITY": "warning",
        "TRANSFORMERS_VERBOSITY": "error",
    }
    code = (
        "from dask_prep.coref.tokenizer import load_tokenizer, model_source\n"
        "print(model_source('someone/tok'), load_tokenizer('someone/tok').mask_token)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cache", "[MASK]"]
    assert "Retry" not in result.stderr and "thrown while requesting" not in result.stderr, result.stderr
