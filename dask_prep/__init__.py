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

from dask_prep.config import Config, preset
from dask_prep.coref.tokenizer import load_tokenizer
from dask_prep.pipeline.cluster import ClusterOptions, register_kiwi, start_client
from dask_prep.pipeline.derive import derive
from dask_prep.pipeline.graph import Pipeline, run
from dask_prep.report.build import summary_lines
from dask_prep.report.html import examples_html
from dask_prep.report.plots import figure_png, report_figures

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
