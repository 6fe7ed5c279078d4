"""Imported once in the forkserver that a LocalCluster's workers fork from (`kiwi_setup`).

Builds and warms the Kiwi every worker forked from it inherits, and imports what the
workers would otherwise each import again.
"""

import os

import distributed  # noqa: F401

import dask_prep.graph  # noqa: F401
import dask_prep.partition  # noqa: F401
from dask_prep.kiwi_setup import FORK_KIWI_ENV, prebuild_for_fork

if FORK_KIWI_ENV in os.environ:
    prebuild_for_fork(os.environ[FORK_KIWI_ENV] or None)
