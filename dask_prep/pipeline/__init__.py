"""Running the pipeline on Dask: the graph, its per-partition tasks, the cluster, progress, timing."""
