"""MinHash signatures and LSH band keys of a document's normalised text (issue 31), in numpy.

Shingles are character n-grams of the text as exact dedup normalises it (NFKC, whitespace
collapsed to one space): they suit Korean without a morphological analyser, where one
syllable carries most of a morpheme and words are short. Each n-gram is hashed to 32 bits
(a polynomial over its code points, then a 64-bit mixer); the signature is the one-permutation
MinHash of those hashes (`signature`). The densification's coins come from a fixed seed, so a
signature is a pure function of the text and the parameters.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd

from dask_prep.dedup.exact import collapse_whitespace

SEED = 31
_MASK32 = np.uint64(0xFFFFFFFF)


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
    hashes = np.sort(_mixed(acc) >> np.uint64(32))  # a plain sort: cheaper than np.unique's hashing
    return hashes[np.r_[True, hashes[1:] != hashes[:-1]]]


def _mixed(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 values: every input bit reaches the kept high bits."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(30))
        values = values * np.uint64(0xBF58476D1CE4E5B9)
        values = values ^ (values >> np.uint64(27))
        values = values * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


@functools.lru_cache(maxsize=8)
def _borrow_to_the_right(count: int, seed: int = SEED) -> np.ndarray:
    """A fixed coin per bin: does an empty bin borrow from the right (True) or the left."""
    coins = np.random.default_rng(seed).integers(0, 2, size=count).astype(bool)
    coins.flags.writeable = False  # shared by every call (cached)
    return coins


def signature(text: str, ngram: int, count: int) -> np.ndarray:
    """The `count` values (uint32) of the text's one-permutation MinHash; all 2**32-1 for an empty text.

    One hash a shingle, not `count`: the 32-bit hash space is cut into `count` equal bins and
    value i is the smallest shingle hash in bin i (one permutation hashing, Li, Owen and Zhang
    2012), so two texts agree at a bin with probability their Jaccard, as with `count`
    permutations, at the cost of hashing the shingles once. A bin that no shingle falls in
    borrows the nearest filled bin's value on the side a fixed coin picks, mixed with the
    distance (improved densification, Shrivastava and Li 2014), so that short texts get full
    signatures. No temporary is `count` times the text, which matters on Dask workers: they
    set MALLOC_TRIM_THRESHOLD_, so every large numpy temporary costs fresh pages.
    """
    shingles = shingle_hashes(text, ngram)  # sorted, distinct, < 2**32
    result = np.full(count, 0xFFFFFFFF, dtype=np.uint64)
    if shingles.size == 0:
        return result.astype(np.uint32)
    bins = (shingles * np.uint64(count)) >> np.uint64(32)
    first = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # sorted: a bin's first is its minimum
    result[bins[first].astype(np.int64)] = shingles[first]
    filled = np.zeros(count, dtype=bool)
    filled[bins[first].astype(np.int64)] = True
    if not filled.all():
        result = _densified(result, filled)
    return result.astype(np.uint32)


def _densified(values: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Empty bins of `values` given the nearest filled bin's value (circularly), mixed with the distance."""
    count = values.size
    index = np.arange(count)
    at_right = np.where(filled, index, 3 * count)
    right = np.minimum.accumulate(np.concatenate([at_right, at_right + count])[::-1])[::-1][:count]
    at_left = np.where(filled, index, -3 * count)
    left = np.maximum.accumulate(np.concatenate([at_left - count, at_left]))[count:]
    to_right = _borrow_to_the_right(count)
    source = np.where(to_right, right, left) % count
    distance = np.where(to_right, right - index, index - left).astype(np.uint64)
    with np.errstate(over="ignore"):
        borrowed = _mixed(values[source] * np.uint64(0x9E3779B97F4A7C15) + distance) >> np.uint64(32)
    return np.where(filled, values, borrowed)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One signed 64-bit key per band: its `rows` values and its index, mixed (int64).

    `sig` is one signature or a matrix of them (one a row); the keys have the same leading shape.
    """
    values = sig[..., : bands * rows].astype(np.uint64).reshape(*sig.shape[:-1], bands, rows)
    with np.errstate(over="ignore"):
        acc = np.broadcast_to(np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15), values.shape[:-1])
        for j in range(rows):
            acc = (acc ^ values[..., j]) * np.uint64(0x100000001B3)
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
    sigs = np.empty((len(texts), count), dtype=np.uint32)
    for i, text in enumerate(texts):
        sigs[i] = signature(text, near.ngram, count)
    keys = band_keys(sigs, near.bands, near.rows)
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
