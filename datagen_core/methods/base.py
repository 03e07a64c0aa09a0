"""The generation-method plug-in interface and the output filters every method shares."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..config import GeneSet, Label, RunConfig
from ..records import GeneSplit
from ..store import PopulationMember, ProjectInfo

REFUSAL_MARKERS = (
    "i apologize", "i'm sorry", "i am sorry", "as an ai", "as a language model", "i cannot", "i can't",
    "i can not", "i'm unable", "i am unable", "i won't", "i will not",
)
_PREFIX = re.compile(r"^\s*(?:text|output|answer|message|example|sample|offspring)\s*\d*\s*:\s*", re.IGNORECASE)
_STOP_MARKER = re.compile(
    r"(?:^|\s)(?:category|label|type|example \d+|requirements?|note|explanation)\s*:", re.IGNORECASE
)


@dataclass(frozen=True)
class GenerationRequest:
    """What a method asks the LLM for one sample, plus the lineage it must keep."""

    label: str
    messages: list[dict[str, str]]
    prompt: str
    parent_ids: tuple[int, ...] = ()
    gene_split: GeneSplit | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodContext:
    project: ProjectInfo
    labels: Sequence[Label]
    gene_set: GeneSet | None
    config: RunConfig

    def label(self, name: str) -> Label:
        return next(lb for lb in self.labels if lb.name == name)


class GenerationMethod(ABC):
    """Turns the live population of a label into LLM requests, one sample per request."""

    name: ClassVar[str]

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        self.context = context
        self.rng = rng

    def observe(self, label: str, members: Sequence[PopulationMember], vectors: np.ndarray) -> None:  # noqa: B027
        """New members joined the label's population (seeds at start, offspring as they land)."""

    def mark_used(self, label: str, parent_ids: tuple[int, ...]) -> None:  # noqa: B027
        """Inputs an earlier session of this run already used (on resume)."""

    @abstractmethod
    def next_request(self, label: str) -> GenerationRequest | None:
        """The next request for `label`, or None when the method has nothing new to ask."""

    def parse(self, request: GenerationRequest, raw: str) -> tuple[str, str | None]:
        """The sample text in a raw answer, and why it is rejected (None when it is kept)."""
        return clean_output(raw, self.context.config.max_chars)


def clean_output(raw: str, max_chars: int) -> tuple[str, str | None]:
    """The generated text and None, or the best-effort text and why it is rejected."""
    lines = raw.strip().strip("`").splitlines()
    kept: list[str] = []
    for line in lines:
        if kept and not line.strip():
            break
        if line.strip():
            kept.append(line.strip())
    text = _PREFIX.sub("", " ".join(kept)).strip()
    stop = _STOP_MARKER.search(text)
    if stop:  # small models echo the prompt's scaffolding after the text
        text = text[: stop.start()].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if not text:
        return text, "empty"
    lowered = text.lower()
    if any(marker in lowered[:80] for marker in REFUSAL_MARKERS):
        return text, "refusal"
    if len(text) > max_chars:
        return text, "too_long"
    return text, None
