"""`DIR/decisions/`: one row per input record, what the rules measured and decided about it."""

from __future__ import annotations

import pyarrow as pa

from dask_prep.analysis.filters import analysis_mode
from dask_prep.config import Config
from dask_prep.document import Document

# After the rules' values in DIR/decisions: how the analysis rules saw the document
# ("whole", "prefix": decided early on a prefix; null: never analysed) and how many of its
# characters Kiwi analysed. The run's mode is in the schema metadata.
ANALYSIS_COLUMNS = (pa.field("analysis", pa.string()), pa.field("kiwi_chars", pa.int64()))
ANALYSIS_MODE_KEY = b"dask_prep.analysis_mode"
# Last: for dedup's rejections, the doc id of the copy kept (`duplicate`, `near_duplicate`).
DEDUP_COLUMNS = (pa.field("duplicate_of", pa.string()),)


def decisions_schema(config: Config) -> pa.Schema:
    """One row per input record; one measured value per enabled rule (null if not reached or,
    for a document decided on a prefix, not measured), then `ANALYSIS_COLUMNS`."""
    fields = [
        pa.field("doc_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("rejected_by", pa.string()),
        pa.field("chars", pa.int64()),
    ]
    fields += [pa.field(name, pa.float64()) for name, rule in config.rules.items() if rule.enabled]
    fields += ANALYSIS_COLUMNS + DEDUP_COLUMNS
    return pa.schema(fields, metadata={ANALYSIS_MODE_KEY: analysis_mode(config).encode()})


def decisions_table(docs: list[Document], schema: pa.Schema) -> pa.Table:
    """The decisions rows of a partition's documents, in `schema` (`decisions_schema`)."""
    metric_names = schema.names[5 : len(schema.names) - len(ANALYSIS_COLUMNS) - len(DEDUP_COLUMNS)]
    columns = {
        "doc_id": [d.doc_id for d in docs],
        "source": [d.source for d in docs],
        "line": [d.line for d in docs],
        "rejected_by": [d.rejected_by for d in docs],
        "chars": [len(d.text) if d.text is not None else None for d in docs],
    }
    for name in metric_names:
        columns[name] = [d.metrics.get(name) for d in docs]
    columns["analysis"] = [d.analysis for d in docs]
    columns["kiwi_chars"] = [d.kiwi_chars if d.analysis is not None else None for d in docs]
    columns["duplicate_of"] = [d.duplicate_of for d in docs]
    return pa.Table.from_pydict(columns, schema=schema)
