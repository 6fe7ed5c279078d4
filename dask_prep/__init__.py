"""dask_prep: a Korean web corpus → an entity-coreference `datasets` dataset, on Dask."""

from dask_prep.config import Config, preset
from dask_prep.graph import ClusterOptions, Pipeline, run, start_client

__all__ = ["ClusterOptions", "Config", "Pipeline", "preset", "run", "start_client"]
__version__ = "0.1.0"
