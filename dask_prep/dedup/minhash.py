"""MinHash signatures and LSH band keys of a document's normalised text (issue 31), in numpy.

Shingles are character n-grams of the text as exact dedup normalises it (NFKC, whitespace
collapsed to one space): they suit Korean without a morphological analyser, where one
syllable carries most of a morpheme and words are short. Each n-gram is hashed to 32 bits
(a polynomial over its code points, then a 64-bit mixer); the signature is the one-permutation
MinHash of those hashes (`signature`). The empty bins' hash coefficients come from a fixed seed,
so a signature is a pure function of the text and the parameters.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd

from dask_prep.dedup.exact import collapse_whitespace

SEED = 31
# Shingles hashed at a time against every empty bin's hash: bounds the temporary matrix.
_CHUNK = 2048
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
def _coefficients(count: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """`a` (odd) and `b`, 64-bit, of one multiply-add-shift hash a bin, from a fixed seed (read-only, cached)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=count, dtype=np.uint64)
    a.flags.writeable = b.flags.writeable = False
    return a, b


def signature(text: str, ngram: int, count: int) -> np.ndarray:
    """The `count` MinHash values (uint32) of the text's shingles; all 2**32-1 for an empty text.

    One permutation hashing (Li, Owen and Zhang 2012): the 32-bit hash space is cut into
    `count` equal bins and value i is the smallest shingle hash in bin i, so a long text costs
    one hash a shingle instead of `count`. Two texts agree at a bin with probability their
    Jaccard, except where both bins are empty: such a bin gets, in both, the classic MinHash
    of its own multiply-add-shift hash `(a_i * x + b_i) >> 32` over all the shingles, a
    fresh sample of the union. Where one text's bin is empty and the other's is not, the values
    differ, as they should (the union's smallest element there is in one text only). So short
    texts keep `count` independent samples; borrowing a filled bin's value instead (the usual
    densification) made 9-character texts sharing 3 of 5 shingles look 70 % alike.
    """
    shingles = shingle_hashes(text, ngram)  # sorted, distinct, < 2**32
    result = np.full(count, 0xFFFFFFFF, dtype=np.uint64)
    if shingles.size == 0:
        return result.astype(np.uint32)
    bins = ((shingles * np.uint64(count)) >> np.uint64(32)).astype(np.int64)
    first = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # sorted: a bin's first is its minimum
    result[bins[first]] = shingles[first]
    empty = np.setdiff1d(np.arange(count), bins[first], assume_unique=True)
    if empty.size:
        a, b = _coefficients(count)
        # empty bins x shingles: at most about count x count / e values (bins are rarely empty
        # once a text has several times `count` shingles), chunked all the same
        for start in range(0, shingles.size, _CHUNK):
            chunk = shingles[start : start + _CHUNK]
            with np.errstate(over="ignore"):
                hashed = (a[empty, None] * chunk[None, :] + b[empty, None]) >> np.uint64(32)
            result[empty] = np.minimum(result[empty], hashed.min(axis=1))
    return result.astype(np.uint32)


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
