"""MinHash signatures and LSH band keys of a document's normalised text (issue 31), in numpy.

Shingles are character n-grams of the text as exact dedup normalises it (NFKC, whitespace
collapsed to one space): they suit Korean without a morphological analyser, where one
syllable carries most of a morpheme and words are short. Each n-gram is hashed to 32 bits
(a polynomial over its code points, then a 64-bit mixer), and the signature's i-th value is
the minimum over the text's distinct shingles of a multiply-add-shift hash
`(a_i * x + b_i) >> 32` (a strongly universal family from 32 to 32 bits). `a`, `b` come from
a fixed seed, so a signature is a pure function of the text and the parameters.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd

from dask_prep.dedup.exact import collapse_whitespace

SEED = 31
_MASK32 = np.uint64(0xFFFFFFFF)
# Shingles hashed at a time against every permutation: bounds the temporary matrix.
_CHUNK = 2048


def normalised(text: str) -> str:
    """The text as `exact.fingerprint` sees it: NFKC, whitespace runs collapsed."""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return collapse_whitespace(text)


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """The distinct 32-bit hashes of the normalised text's character `ngram`-grams (uint64).

    A text shorter than `ngram` is one shingle, itself; an empty text has none.
    """
    codes = np.frombuffer(normalised(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size == 0:
        return codes
    if codes.size < ngram:
        ngram = int(codes.size)
    count = codes.size - ngram + 1
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(ngram):  # wrapping polynomial hash over the n code points
            acc = acc * np.uint64(0x100000001B3) + codes[j : j + count]
        # splitmix64's finaliser: every input bit reaches the kept high bits
        acc ^= acc >> np.uint64(30)
        acc *= np.uint64(0xBF58476D1CE4E5B9)
        acc ^= acc >> np.uint64(27)
        acc *= np.uint64(0x94D049BB133111EB)
        acc ^= acc >> np.uint64(31)
    return np.unique(acc >> np.uint64(32))


def permutations(count: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The `a` (odd) and `b` 64-bit coefficients of `count` hash functions, from a fixed seed."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=count, dtype=np.uint64)
    return a, b


def signature(
    text: str, ngram: int, count: int, coefficients: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """The `count` MinHash values (uint32) of the text's shingles; all 2**32-1 for an empty text."""
    a, b = coefficients if coefficients is not None else permutations(count)
    shingles = shingle_hashes(text, ngram)
    result = np.full(count, 0xFFFFFFFF, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, shingles.size, _CHUNK):
            chunk = shingles[start : start + _CHUNK]
            hashed = (a[:, None] * chunk[None, :] + b[:, None]) >> np.uint64(32)
            np.minimum(result, hashed.min(axis=1), out=result)
    return result.astype(np.uint32)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One signed 64-bit key per band: its `rows` values and its index, mixed (int64)."""
    values = sig[: bands * rows].astype(np.uint64).reshape(bands, rows)
    with np.errstate(over="ignore"):
        acc = np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for j in range(rows):
            acc = (acc ^ values[:, j]) * np.uint64(0x100000001B3)
            acc ^= acc >> np.uint64(29)
    return acc.view(np.int64)


class NearParams(NamedTuple):
    ngram: int
    bands: int
    rows: int


def node_id(partition: int, position: int) -> int:
    """A document's node for near-dedup: its partition index and position there, in one int64."""
    return (partition << 32) | position


def near_frame(texts: list[str], near: NearParams) -> pd.DataFrame:
    """Per text: `band_0`... (LSH band keys, int64) and `sig_0`... (signature's low 16 bits)."""
    count = near.bands * near.rows
    coefficients = permutations(count)
    sigs = np.empty((len(texts), count), dtype=np.uint32)
    for i, text in enumerate(texts):
        sigs[i] = signature(text, near.ngram, count, coefficients)
    keys = np.empty((len(texts), near.bands), dtype=np.int64)
    for i in range(len(texts)):
        keys[i] = band_keys(sigs[i], near.bands, near.rows)
    columns = {f"band_{b}": keys[:, b] for b in range(near.bands)}
    low = sigs.astype(np.uint16)
    columns.update({f"sig_{j}": low[:, j] for j in range(count)})
    return pd.DataFrame(columns)


def estimated_jaccard(first: np.ndarray, second: np.ndarray) -> float:
    """The share of equal values of two signatures: an unbiased estimate of their Jaccard."""
    return float(np.mean(first == second))


def jaccard(first: str, second: str, ngram: int) -> float:
    """The exact Jaccard similarity of two texts' shingle sets (for tests and verification)."""
    x, y = shingle_hashes(first, ngram), shingle_hashes(second, ngram)
    if x.size == 0 and y.size == 0:
        return 1.0
    common = np.intersect1d(x, y, assume_unique=True).size
    return common / (x.size + y.size - common)
