"""`python -m dask_prep ...` is the same as `dask-prep ...`."""

from dask_prep.cli.main import entry_point

if __name__ == "__main__":
    entry_point()
