"""notebooks/interactive_run.ipynb runs top to bottom and writes a real dataset.

The notebook is executed by nbclient in a fresh python3 kernel, with notebooks/ as its
working directory, exactly as a user would run it. It connects to the session cluster
through DASK_SCHEDULER_ADDRESS (its `connect to a running scheduler` branch), so the test
does not start a second cluster on the machine.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from support.data import REPO, SHARED

NOTEBOOK = REPO / "notebooks" / "interactive_run.ipynb"


def _has_sample() -> bool:
    shared = (SHARED / "data" / "kowiki-hplt" / "00000.jsonl.zst").is_file() and (
        SHARED / "tokenizers" / "koelectra-v1-cased"
    ).is_dir()
    own = (REPO / "sample" / "ko_sample.jsonl").is_file() and (REPO / "sample" / "tokenizer").is_dir()
    return shared or own


def _text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        for kind in ("text/plain", "text/html", "text/markdown"):
            if kind in output.get("data", {}):
                parts.append(output["data"][kind])
    return "\n".join(parts)


def _execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheduler: str) -> tuple[dict, Path]:
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[test]')")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no python3 Jupyter kernel (python -m ipykernel install --user)")

    output_dir = tmp_path / "notebook-output"
    # The kernel is a child of this process and inherits its environment.
    monkeypatch.setenv("DASK_PREP_NOTEBOOK_OUTPUT", str(output_dir))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)
    monkeypatch.setenv("DASK_PREP_SHARED", str(SHARED))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook,
        timeout=900,  # per cell: a loaded machine is slow, a hung cell still fails
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    return notebook, output_dir


@pytest.mark.slow  # the whole notebook, about a minute on two cores
@pytest.mark.skipif(not _has_sample(), reason=f"neither the shared corpus at {SHARED} nor sample/ is there")
def test_notebook_runs_top_to_bottom(client, tmp_path, monkeypatch):
    import datasets
    from PIL import Image

    notebook, output_dir = _execute(tmp_path, monkeypatch, client.scheduler.address)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(o.get("output_type") != "error" for c in code_cells for o in c.get("outputs", []))

    # The final cell loaded the dataset the notebook wrote; it matches report.json.
    report = json.loads((output_dir / "report.json").read_text(encoding="utf-8"))
    written = report["examples"]["written"]
    dataset = datasets.load_from_disk(report["dataset"])
    assert Path(report["dataset"]).parent == output_dir
    assert len(dataset) > 0
    assert len(dataset) == written
    final = _text(code_cells[-1])
    assert f"dataset rows: {written};" in final
    assert f"num_rows: {written}" in final

    # What the notebook shows: rejected documents, the threshold change, examples, plots.
    shown = "\n".join(_text(c) for c in code_cells)
    for reason in report["rejected"]:
        assert f"**{reason}**" in shown
    assert "nnp_ratio min 0.03" in shown
    assert 'class="mask"' in shown and 'class="ante"' in shown and "[MASK]" in shown
    pngs = [
        base64.b64decode(o["data"]["image/png"])
        for c in code_cells
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    plots = 5 if report.get("near_duplicates") is not None else 4  # + near-duplicate clusters when near-dedup ran
    assert len(pngs) == plots
    for png in pngs:
        Image.open(io.BytesIO(png)).verify()

    # report.html sits next to report.json, with the same plots as PNG.
    page = (output_dir / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == plots
    for image in images:
        Image.open(io.BytesIO(base64.b64decode(image))).verify()


def test_the_notebook_uses_only_the_public_api():
    """The notebook imports dask_prep's top-level names only, each of them exported."""
    import dask_prep

    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert not re.findall(r"^\s*(?:from|import)\s+dask_prep\.\w+", code, flags=re.MULTILINE)
    block = re.search(r"from dask_prep import \(([^)]*)\)", code)
    assert block, "the notebook imports dask_prep's names in one parenthesised import"
    names = [name.strip() for name in block.group(1).split(",") if name.strip()]
    assert names and set(names) <= set(dask_prep.__all__)
    assert all(hasattr(dask_prep, name) for name in dask_prep.__all__)
