"""What stage 1 keeps of each kept document's Kiwi analysis, and the entity step on it.

The entity step (`document_entities`) is a pure function of (doc id, text, tokens,
`EntityConfig`): `run` calls it right after Kiwi, `derive` on the tokens a run stored, so
both give the same candidates for the same config. A token is what `coref.entities` reads of
one: `form`, `tag`, `start`, `len` (`StoredToken`). Stored, a form equal to the text it
covers (nearly all) is left out and read back from the text (`encode_tokens`,
`decode_tokens`). `ANALYSIS_FORMAT` names this layout; a run that kept no tokens is format 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from dask_prep.config import EntityConfig
from dask_prep.coref.entities import Candidate, build_candidates, find_repeated_entities
from dask_prep.coref.names import ProperCounts, example_entities, proper_counts, without_echoes

# Raise it whenever what is stored per token changes (a field added, another meaning), so
# that `derive` refuses parts it would read wrongly instead of deriving another dataset.
ANALYSIS_FORMAT = 1


class StoredToken(NamedTuple):
    """One Kiwi token as the entity step reads it (kiwipiepy's `Token` has the same fields)."""

    form: str
    tag: str
    start: int
    len: int

    @property
    def end(self) -> int:
        return self.start + self.len


def stored_tokens(tokens: Iterable[Any]) -> list[StoredToken]:
    """Kiwi's tokens (or any with form, tag, start, len) as plain `StoredToken`s."""
    return [StoredToken(t.form, t.tag, t.start, t.len) for t in tokens]


def encode_tokens(text: str, tokens: list[StoredToken]) -> dict[str, list]:
    """Columns of one document's tokens; a form that is `text[start:end]` is stored as None."""
    return {
        "form": [t.form if text[t.start : t.start + t.len] != t.form else None for t in tokens],
        "tag": [t.tag for t in tokens],
        "start": [t.start for t in tokens],
        "len": [t.len for t in tokens],
    }


def decode_tokens(text: str, columns: dict[str, list]) -> list[StoredToken]:
    """The tokens `encode_tokens` stored, forms read back from the text where left out."""
    return [
        StoredToken(form if form is not None else text[start : start + length], tag, start, length)
        for form, tag, start, length in zip(
            columns["form"], columns["tag"], columns["start"], columns["len"], strict=True
        )
    ]


@dataclass(frozen=True)
class DocumentEntities:
    """The entity step's result for one kept document."""

    qualifying: int  # entities the `no_repeated_entity` rule counts (NNP forms mentioned enough)
    giving_examples: int  # entities whose mentions may give examples (`entities.mentions`)
    candidates: list[Candidate]
    proper_counts: ProperCounts  # for the corpus-level proper-noun share (`coref.names.proper_counts`)
    echoes: int  # later mentions echoing a title line, dropped (`coref.names.without_echoes`)


def document_entities(doc_id: str, text: str, tokens: list[Any], config: EntityConfig) -> DocumentEntities:
    """Entities and candidate examples of one kept document, from its text and Kiwi tokens alone."""
    qualifying = find_repeated_entities(tokens, config)
    examples = qualifying if config.mentions == "nnp" else example_entities(text, tokens, config)
    echoes = 0
    if config.mentions == "names":
        examples, echoes = without_echoes(text, examples)
    return DocumentEntities(
        qualifying=len(qualifying),
        giving_examples=len(examples),
        candidates=build_candidates(doc_id, examples, config),
        proper_counts=proper_counts(text, tokens, config),
        echoes=echoes,
    )
