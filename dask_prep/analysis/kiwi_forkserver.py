"""Imported once in the forkserver that a LocalCluster's workers fork from (`kiwi_setup`).

Builds and warms the Kiwi every worker forked from it inherits. The other modules the
workers need are imported there before this one (`kiwi_setup.FORKSERVER_PRELOAD`).
"""

import os

from dask_prep.analysis.kiwi import FORK_KIWI_ENV, prebuild_for_fork

if FORK_KIWI_ENV in os.environ:
    prebuild_for_fork(os.environ[FORK_KIWI_ENV] or None)
