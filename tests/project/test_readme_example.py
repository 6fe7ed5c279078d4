"""Issue 25: README's Python example runs as written, as a plain script from the repository root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _example() -> str:
    """The README's Python code block that is a script (the one with the `__main__` guard)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    scripts = [block for block in blocks if 'if __name__ == "__main__":' in block]
    assert len(scripts) == 1, "README.md should hold one Python script example"
    return scripts[0]


@pytest.mark.cluster
def test_the_readme_example_runs_as_a_script(tmp_path):
    script = tmp_path / "readme_example.py"
    script.write_text(_example(), encoding="utf-8")
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = re.search(r"^(\d+) examples written to out/example$", result.stdout, re.M)
    assert written, result.stdout[-2000:]
    assert "kept" in result.stdout  # the judged documents' frequencies
    report = (REPO / "out" / "example" / "report.json").read_text(encoding="utf-8")
    assert f'"written": {written.group(1)}' in report
