"""dask_prep: a Korean web corpus → an entity-coreference `datasets` dataset, on Dask.

The public API, for scripts and notebooks:

- `preset`, `Config`: the rules and settings of a run (`preset("seed-v2")`);
- `Pipeline`, `run`: build and run the Dask graph; `start_client`, `ClusterOptions`,
  `register_kiwi`: a LocalCluster or an existing scheduler with one Kiwi per worker;
- `derive`: another dataset from a finished run's analysis, without Kiwi;
- `summary_lines`: the run's summary table as text lines, from its report;
- `load_tokenizer`: the Hugging Face tokenizer a run uses (a local directory or a hub name);
- `report_figures`, `figure_png`, `examples_html`: the report's plots and examples, for display.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask_prep.config import Config, preset
    from dask_prep.coref.tokenizer import load_tokenizer
    from dask_prep.pipeline.cluster import ClusterOptions, register_kiwi, start_client
    from dask_prep.pipeline.derive import derive
    from dask_prep.pipeline.graph import Pipeline, run
    from dask_prep.report.build import summary_lines
    from dask_prep.report.html import examples_html
    from dask_prep.report.plots import figure_png, report_figures

# Imported when first used: `dask-prep` itself (dask_prep.cli) starts without loading Dask,
# distributed and matplotlib first, so its first line comes at once.
_PUBLIC = {
    "Config": "dask_prep.config",
    "preset": "dask_prep.config",
    "load_tokenizer": "dask_prep.coref.tokenizer",
    "ClusterOptions": "dask_prep.pipeline.cluster",
    "register_kiwi": "dask_prep.pipeline.cluster",
    "start_client": "dask_prep.pipeline.cluster",
    "derive": "dask_prep.pipeline.derive",
    "Pipeline": "dask_prep.pipeline.graph",
    "run": "dask_prep.pipeline.graph",
    "summary_lines": "dask_prep.report.build",
    "examples_html": "dask_prep.report.html",
    "figure_png": "dask_prep.report.plots",
    "report_figures": "dask_prep.report.plots",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dask_prep' has no attribute {name!r}")


__all__ = [
    "ClusterOptions",
    "Config",
    "Pipeline",
    "derive",
    "examples_html",
    "figure_png",
    "load_tokenizer",
    "preset",
    "register_kiwi",
    "report_figures",
    "run",
    "start_client",
    "summary_lines",
]
__version__ = "0.1.0"
