"""The command line: `dask-prep run`, `dask-prep presets`."""
