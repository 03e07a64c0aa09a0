"""Plain records that cross the boundary between the engine and the store."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def text_hash(text: str) -> str:
    """Identity of a text for embedding caching and the store (whitespace and case folded)."""
    normalised = " ".join(text.split()).casefold()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:32]


_WORD = re.compile(r"\w+")
_TERM = re.compile(r"[^\W_]+")
_STOP_WORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only
or other our ours ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves
"""
#: English function words: left out of retrieval terms (knowledge base) and of label shortcuts (debias).
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())


def folded_words(text: str) -> list[str]:
    """A text's words with case, whitespace and punctuation folded away: what duplicate and copy checks, shingles
    and the diversity metrics compare."""
    return _WORD.findall(text.casefold())


def terms(text: str) -> list[str]:
    """Case-folded runs of letters and digits (underscores split them too): the tokens of retrieval and of
    shortcut detection."""
    return _TERM.findall(text.casefold())


def duplicate_key(text: str) -> str:
    """Texts that differ only in case, whitespace or punctuation are one sample: a small model that drops a
    comma from a seed has copied it."""
    words = " ".join(folded_words(text))
    return hashlib.sha256(words.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class LLMCallRecord:
    """One completion request as sent and answered: the cache and the token accounting read these."""

    id: str
    run_id: str | None
    purpose: str
    backend: str
    model: str
    cache_key: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    response: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    attempts: int
    cached: bool
    error: str | None
    created_at: datetime = field(default_factory=utcnow)
    #: What the caller asked this call for (a run: the label and lineage of the sample its answer becomes).
    request: dict[str, Any] | None = None
    #: Transient faults before the answer (kind -> count) and the time they cost (failed attempts, back-off).
    faults: dict[str, int] | None = None
    lost_ms: float = 0.0


@dataclass(frozen=True)
class GeneSplit:
    """Which genes an offspring inherits from each parent and which it must mutate."""

    parent1: tuple[str, ...]
    parent2: tuple[str, ...]
    mutated: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {"parent1": list(self.parent1), "parent2": list(self.parent2), "mutated": list(self.mutated)}


@dataclass(frozen=True)
class NewSample:
    """A generated sample with its full lineage, ready to be written in one transaction."""

    id: int
    run_id: str
    label: str
    text: str
    method: str
    parent_ids: tuple[int, ...]
    gene_split: GeneSplit | None
    prompt: str
    model: str
    sampling: dict[str, Any]
    raw_response: str
    llm_call_id: str
    prompt_tokens: int
    completion_tokens: int
    requested_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    filter_reason: str | None = None
    created_at: datetime = field(default_factory=utcnow)

    @property
    def text_hash(self) -> str:
        return text_hash(self.text)
