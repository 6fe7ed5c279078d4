"""Where the test data is, and small data the unit tests share.

The shared test data (../shared, or $DASK_PREP_SHARED) is absent from a user's fresh
clone: tests that need it are marked `needs_shared` and skip, saying where it was looked for.
"""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dask_prep.config import Config
    from dask_prep.document import Document

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("DASK_PREP_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "data" / "kowiki-hplt"
SPEECHES = SHARED / "data" / "nk-speeches.jsonl"
TOKENIZER = SHARED / "tokenizers" / "koelectra-v1-cased"
SHARED_MISSING_REASON = (
    f"the shared test data is not at {SHARED} (clone the repo beside shared/, or set DASK_PREP_SHARED)"
)


def shared_present() -> bool:
    return CORPUS.is_dir() and TOKENIZER.is_dir()


# A test marked `needs_shared` (directly or through a fixture that reads ../shared) skips
# with SHARED_MISSING_REASON when the data is absent: tests/conftest.py applies the skip.
needs_shared = pytest.mark.needs_shared

# ---- the repo's own sample and made-up tokens (unit tests) ------------------------------

SAMPLE = REPO / "sample" / "ko_sample.jsonl"
SAMPLE_TOKENIZER = REPO / "sample" / "tokenizer"

# The seed-v2 rules, in the order (too_long is an extra guard for Kiwi).
SEED_V2_RULES = {
    "length": (800, 2500),
    "sentence_marks": (3, None),
    "hangul_ratio": (0.4, None),
    "symbol_ratio": (None, 0.3),
    "nnp_ratio": (0.05, 0.20),
    "pronoun": (None, 0),
    "no_repeated_entity": (1, None),
}

Tok = namedtuple("Tok", "form tag start len")


def read_all(inputs: list[str], partition_size: int) -> list[Document]:
    """Every document of `inputs`, read partition by partition as the pipeline plans them."""
    from dask_prep.io.reading import plan_partitions, read_partition, resolve_inputs, scan_file

    files = resolve_inputs(inputs)
    specs = plan_partitions(files, [scan_file(f).records for f in files], partition_size)
    docs = []
    for spec in specs:
        part, damaged = read_partition(spec, "text", "id")
        assert damaged == {}
        docs.extend(part)
    return docs


def seed_config_with(tokenizer_dir, **changes) -> Config:
    """Preset seed-v2 with the shared tokenizer; changes are section__field=value."""
    from dask_prep.config import preset

    config = preset("seed-v2")
    config.tokenize.model = str(tokenizer_dir)
    for dotted, value in changes.items():
        section, name = dotted.split("__")
        setattr(getattr(config, section), name, value)
    config.validate()
    return config
