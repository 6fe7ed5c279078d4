"""`Document`: one input record as it moves through the stages (read, judged, analysed).

Every stage imports it from here; `dask_prep.io.reading` makes them from the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Document:
    doc_id: str
    text: str | None
    source: str  # the file's key: its path under the directory or glob it was found in
    line: int  # 1-based line (JSON Lines) or row (parquet) within `source`
    rejected_by: str | None = None
    duplicate_of: str | None = None  # the kept copy's doc id, for dedup's rejections
    metrics: dict[str, float] = field(default_factory=dict)
    # Filled by the filters for the entity step, so Kiwi runs once per document.
    tokens: list | None = None
    entities: dict | None = None
    # A kept document's Kiwi tokens as stage 1 stores them (`coref.kept_analysis.encode_tokens`).
    kept_tokens: dict | None = None
    # How the analysis rules saw it: "whole" (one whole-document analysis) or "prefix"
    # (progressive analysis decided on a prefix); None = never analysed.
    analysis: str | None = None
    kiwi_chars: int = 0  # characters of it that Kiwi analysed (chunks and whole)
    # The full input path or URL of its file (two files' keys may be equal): dedup's copy key.
    path: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            self.path = self.source
