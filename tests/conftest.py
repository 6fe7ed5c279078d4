"""Shared fixtures: the real test data in ../shared, a real LocalCluster, real runs.

Tests that need ../shared skip with a clear reason when it is absent (a user's fresh
clone has no ../shared). The cluster is one LocalCluster of two worker processes for the
whole session; every integration test computes on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DASK_PREP_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "data" / "kowiki-hplt"
SPEECHES = SHARED / "data" / "nk-speeches.jsonl"
TOKENIZER = SHARED / "tokenizers" / "koelectra-v1-cased"

needs_shared = pytest.mark.skipif(
    not CORPUS.is_dir() or not TOKENIZER.is_dir(),
    reason=f"the shared test data is not at {SHARED} (clone the repo beside shared/, "
    "or set DASK_PREP_SHARED)",
)


@pytest.fixture(scope="session")
def shard0() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    return CORPUS / "00000.jsonl.zst"


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    if not TOKENIZER.is_dir():
        pytest.skip(f"the shared tokenizer is not at {TOKENIZER}")
    return TOKENIZER


@pytest.fixture(scope="session")
def client():
    """A real LocalCluster with two worker processes and the Kiwi plugin registered."""
    from distributed import Client, LocalCluster

    from dask_prep.graph import register_kiwi

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="4GiB"
    ) as cluster, Client(cluster) as client:
        register_kiwi(client)
        yield client


@pytest.fixture
def seed_config(tokenizer_dir):
    from dask_prep.config import preset

    config = preset("seed-v2")
    config.tokenize.model = str(tokenizer_dir)
    return config
