"""The project set-up a fresh clone relies on.

- environment.yml and pyproject.toml declare the same dependencies;
- the command line answers `--help` and prints presets that `--config` reads back;
- the repo's own sample and tokenizer are what the quick start needs, and
  scripts/build_sample_tokenizer.py rebuilds that tokenizer;
- the quick start (the sample through the whole pipeline) gives examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from dask_prep.config import Config, preset

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample" / "ko_sample.jsonl"
SAMPLE_TOKENIZER = REPO / "sample" / "tokenizer"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# ---- dependencies ---------------------------------------------------------------------


def _pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def _environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))


def _conda_requirement(spec: str) -> Requirement:
    """A conda match spec as a pip requirement: `name=1.2` means 1.2.*, `name>=1` stays."""
    spec = spec.split("::")[-1].strip()  # drop a channel prefix
    for i, ch in enumerate(spec):
        if ch in "=<>!~ ":
            name, version = spec[:i], spec[i:].strip()
            break
    else:
        return Requirement(spec)
    if version.startswith("=") and not version.startswith("=="):
        version = f"=={version[1:]}" + ("" if version.endswith("*") else ".*")
    return Requirement(f"{name}{version}")


def _by_name(requirements: list[Requirement]) -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for req in requirements:
        name = canonicalize_name(req.name)
        assert name not in out, f"{req.name} is listed twice"
        out[name] = req
    return out


def _environment_requirements() -> tuple[dict[str, Requirement], Requirement | None]:
    """(every package but python and pip, the python pin)."""
    reqs, python = [], None
    for entry in _environment()["dependencies"]:
        if isinstance(entry, dict):
            for line in entry.get("pip", []):
                if not line.startswith("-"):  # options such as `-e .` are not packages
                    reqs.append(Requirement(line))
            continue
        req = _conda_requirement(entry)
        if req.name == "python":
            python = req
        elif req.name != "pip":
            reqs.append(req)
    return _by_name(reqs), python


def test_environment_yml_has_the_pyproject_dependencies():
    project = _pyproject()["project"]
    declared = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        declared += group
    declared = list(dict.fromkeys(declared))  # an extra may repeat another's line exactly (s3fs: s3 and test)
    expected = _by_name([Requirement(line) for line in declared])
    found, _ = _environment_requirements()
    assert sorted(found) == sorted(expected), "environment.yml and pyproject.toml list different packages"
    for name, req in expected.items():
        env_req = found[name]
        assert env_req.specifier == req.specifier, f"{name}: environment.yml {env_req}, pyproject.toml {req}"
        assert env_req.extras == req.extras, f"{name}: extras differ ({env_req.extras} vs {req.extras})"


def test_environment_python_satisfies_requires_python():
    _, python = _environment_requirements()
    assert python is not None, "environment.yml should pin python"
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    pinned = str(python.specifier).lstrip("=").rstrip(".*")
    assert requires.contains(pinned), f"python {pinned} is outside requires-python {requires}"
    assert _environment()["name"] == "dask-prep"  # the name README's `conda activate` uses


def test_conda_specs_are_read_as_pip_requirements():
    assert str(_conda_requirement("python=3.11").specifier) == "==3.11.*"
    assert str(_conda_requirement("conda-forge::pyarrow>=15").specifier) == ">=15"
    assert _conda_requirement("pip").name == "pip"


# ---- command line ---------------------------------------------------------------------


def _console_script() -> str:
    beside = Path(sys.executable).with_name("dask-prep")
    found = str(beside) if beside.exists() else shutil.which("dask-prep")
    assert found, "the dask-prep console script is not installed (pip install -e .)"
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=OFFLINE, timeout=300)


@pytest.mark.cluster
def test_python_m_dask_prep_help():
    result = _run([sys.executable, "-m", "dask_prep", "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dask-prep")
    assert "run" in result.stdout and "presets" in result.stdout
    run_help = _run([sys.executable, "-m", "dask_prep", "run", "--help"])
    assert run_help.returncode == 0, run_help.stderr
    for option in ("--output-dir", "--model", "--seq-len", "--max-entity-freq", "--config", "--scheduler"):
        assert option in run_help.stdout


@pytest.mark.cluster
def test_presets_show_output_is_a_valid_config(tmp_path):
    script = _console_script()
    listed = _run([script, "presets", "list"])
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]  # each: name, one-line description
    assert "seed-v2" in names
    for name in names:
        shown = _run([script, "presets", "show", name])
        assert shown.returncode == 0, shown.stderr
        path = tmp_path / f"{name}.yaml"
        path.write_text(shown.stdout, encoding="utf-8")
        assert Config.from_yaml(path) == preset(name)


@pytest.mark.cluster
def test_an_unknown_preset_is_a_one_line_error():
    result = _run([_console_script(), "presets", "show", "seed-v9"])
    assert result.returncode == 2
    assert result.stderr.strip().startswith("dask-prep: error: unknown preset 'seed-v9'")
    assert "Traceback" not in result.stderr


# ---- the repo's own sample and tokenizer ----------------------------------------------


def test_the_sample_is_small_korean_jsonl_in_the_hplt_layout():
    assert SAMPLE.stat().st_size < 150_000
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 40
    assert all(set(r) == {"id", "text", "u"} for r in records)
    assert all(r["id"] == hashlib.md5(r["u"].encode()).hexdigest() for r in records)
    assert len({r["id"] for r in records}) == len(records)
    assert sum(800 <= len(r["text"]) <= 2500 for r in records) >= 30


def test_the_sample_tokenizer_loads_offline():
    code = (
        "from transformers import AutoTokenizer; "
        f"t = AutoTokenizer.from_pretrained({str(SAMPLE_TOKENIZER)!r}); "
        "print(t.is_fast, t.mask_token, t.pad_token, t.cls_token, t.sep_token, t.unk_token, len(t), "
        "' '.join(t.tokenize('하늘내 목공 학교는 춘천에 있다.')))"
    )
    result = _run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    fields = result.stdout.split()
    assert fields[:6] == ["True", "[MASK]", "[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    assert 2000 <= int(fields[6]) <= 4000
    assert "[UNK]" not in fields[7:]  # cased WordPiece that covers the sample's characters
    assert "춘천" in fields[7:]


def test_the_build_script_reproduces_the_committed_tokenizer(tmp_path):
    out = tmp_path / "tokenizer"
    result = _run([sys.executable, str(REPO / "scripts" / "build_sample_tokenizer.py"), "--output", str(out)])
    assert result.returncode == 0, result.stderr
    assert (out / "vocab.txt").read_bytes() == (SAMPLE_TOKENIZER / "vocab.txt").read_bytes()
    rebuilt = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    committed = json.loads((SAMPLE_TOKENIZER / "tokenizer.json").read_text(encoding="utf-8"))
    for part in ("model", "normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert rebuilt[part] == committed[part], part

    from transformers import AutoTokenizer

    texts = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    a = AutoTokenizer.from_pretrained(str(out))
    b = AutoTokenizer.from_pretrained(str(SAMPLE_TOKENIZER))
    assert a(texts)["input_ids"] == b(texts)["input_ids"]


# ---- the quick start ------------------------------------------------------------------


def test_the_quick_start_gives_examples(pipeline_runner, tmp_path):
    """README's first command, on the session cluster: the sample with its own tokenizer."""
    config = preset("seed-v2")
    config.tokenize.model = str(SAMPLE_TOKENIZER)
    run = pipeline_runner([SAMPLE], config, tmp_path / "quickstart")
    documents = run.report["documents"]
    assert (documents["read"], documents["malformed"], documents["kept"]) == (40, 0, 25)
    assert sum(run.report["rejected"].values()) == documents["rejected"] == 15
    dataset = run.dataset()
    assert len(dataset) == run.report["examples"]["written"] > 0
    mask_id = 4  # [MASK] in sample/tokenizer
    for row in dataset.select(range(min(20, len(dataset)))):
        assert set(row["input_ids"][row["mask_start"] : row["mask_end"]]) == {mask_id}
