"""Retrieval-checked facts (SPEC §3): does an item agree with the user's knowledge base?

Per item, one call names up to 3 entities or claims; passages are retrieved for the item text and for
each of them (hybrid embedding + BM25, see `knowledge.py`), deduplicated, and the best `evidence` kept;
a judge call then says whether the item is supported, contradicted, or not decidable from them, and
proposes a correction. Only a contradiction rejects (or, with `correct=True`, rewrites) an item: the
knowledge base is rarely complete, so missing evidence is no reason to drop data. Every verdict keeps
the entities, the evidence and the judge's explanation, so a reviewer can see why. Malformed answers
are retried; an entity list that stays malformed falls back to the item text alone, a judge answer
that stays malformed rejects the item as `judge_unusable` (as self-reflection does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from datagen_core.checks.base import Check, CheckContext, Item, Verdict
from datagen_core.checks.knowledge import KnowledgeBase, Passage
from datagen_core.config import SamplingParams
from datagen_core.errors import DatagenError
from datagen_core.llm import LLM
from datagen_core.llm.structured import ask_structured
from datagen_core.registry import Options
from datagen_core.store import Store

ENTITY_SAMPLING = SamplingParams(temperature=0.0, max_tokens=200)
JUDGE_SAMPLING = SamplingParams(temperature=0.0, max_tokens=500)
MAX_ENTITIES = 3
RETRIEVAL_METHODS = {"hybrid": ("embedding", "bm25"), "embedding": ("embedding",), "bm25": ("bm25",)}


class Entities(BaseModel):
    entities: list[str] = Field(description="up to 3 named entities or factual claims")


class FactJudgement(BaseModel):
    verdict: Literal["supported", "contradicted", "not_enough_evidence"]
    explanation: str
    correction: str | None = None


def entity_prompt(text_kind: str, item_text: str) -> str:
    return (
        f"List up to {MAX_ENTITIES} named entities or factual claims in this {text_kind} that could be checked "
        f"against an encyclopedia.\n\nText: {item_text}\n\n"
        'Answer as JSON: {"entities": ["...", "..."]}'
    )


def judge_prompt(text_kind: str, item_text: str, passages: Sequence[Passage]) -> str:
    evidence = "\n\n".join(f"[{i}] {p.text}" for i, p in enumerate(passages, start=1))
    return (
        f"You check the facts of a synthetic {text_kind} against reference passages.\n\n"
        f"Passages:\n{evidence}\n\nItem: {item_text}\n\n"
        "Does the item agree with the passages? Say \"supported\" if they confirm it, \"contradicted\" if they "
        "state something incompatible with it, \"not_enough_evidence\" otherwise. If contradicted, give a "
        f"corrected version of the whole {text_kind} that agrees with the passages, else null. Answer as JSON: "
        '{"verdict": "supported" | "contradicted" | "not_enough_evidence", "explanation": "...", '
        '"correction": "..." or null}'
    )


class FactsOptions(Options):
    mode: Literal["flag", "correct"] = Field(default="flag", title="Contradicted facts",
                                             description="Flag contradicted facts, or correct them.")


class FactsCheck(Check):
    name = "facts"
    title = "Retrieval-checked facts"
    summary = "Claims are checked against passages retrieved from the project's knowledge base (`datagen kb load`)."
    Options = FactsOptions

    @classmethod
    def require(cls, store: Store) -> None:
        if not store.kb_count():
            raise DatagenError("the facts check needs a knowledge base: load documents with `datagen kb load` first")

    @classmethod
    def from_options(cls, options: Options) -> Check:
        assert isinstance(options, FactsOptions)
        return cls(correct=options.mode == "correct")

    def __init__(self, evidence: int = 5, per_query: int = 3, retrieval: str = "hybrid",
                 correct: bool = False) -> None:
        if retrieval not in RETRIEVAL_METHODS:
            raise DatagenError(f"unknown retrieval {retrieval!r}; use one of {', '.join(RETRIEVAL_METHODS)}")
        if evidence < 1 or per_query < 1:
            raise DatagenError("evidence and per_query must be at least 1")
        self.evidence = evidence
        self.per_query = per_query
        self.retrieval = retrieval
        self.correct = correct

    def options(self) -> dict[str, Any]:
        return {"evidence": self.evidence, "per_query": self.per_query, "retrieval": self.retrieval,
                "correct": self.correct}

    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        if context.llm is None:
            raise DatagenError("the fact check needs an LLM")
        knowledge = KnowledgeBase(context.store, context.embedder)
        knowledge.ensure_loaded()  # an empty base fails here, before any LLM call
        kind = context.store.project().text_kind
        return list(await asyncio.gather(*[self._check(context.llm, knowledge, kind, item) for item in items]))

    def _evidence(self, knowledge: KnowledgeBase, queries: Sequence[str]) -> list[Passage]:
        """Passages for every query, each kept once with its best score, the best `evidence` of them."""
        best: dict[int, Passage] = {}
        for query in queries:
            for passage in knowledge.retrieve(query, self.per_query, RETRIEVAL_METHODS[self.retrieval]):
                if passage.doc_id not in best or passage.score > best[passage.doc_id].score:
                    best[passage.doc_id] = passage
        return sorted(best.values(), key=lambda p: (-p.score, p.doc_id))[: self.evidence]

    async def _check(self, llm: LLM, knowledge: KnowledgeBase, kind: str, item: Item) -> Verdict:
        key = f"{item.id}:{item.text}"
        details: dict[str, Any] = {}
        named = await ask_structured(llm, [{"role": "user", "content": entity_prompt(kind, item.text)}], Entities,
                                     sampling=ENTITY_SAMPLING, purpose="facts_entities", key=key)
        entities: list[str] = []
        if named.value is None:
            details["entity_problems"] = named.problems
        else:
            entities = list(dict.fromkeys(e.strip() for e in named.value.entities if e.strip()))[:MAX_ENTITIES]
        details["entities"] = entities
        # Retrieval embeds and queries DuckDB: off the event loop, so a run's requests keep flowing meanwhile.
        passages = await asyncio.to_thread(self._evidence, knowledge, [item.text, *entities])
        details["evidence"] = [p.summary() for p in passages]
        judged = await ask_structured(llm, [{"role": "user", "content": judge_prompt(kind, item.text, passages)}],
                                      FactJudgement, sampling=JUDGE_SAMPLING, purpose="facts_judge", key=key)
        if judged.value is None:
            details["judge_problems"] = judged.problems
            return Verdict(keep=False, reason="judge_unusable", details=details)
        verdict = judged.value
        correction = (verdict.correction or "").strip() or None
        details.update(verdict=verdict.verdict, explanation=verdict.explanation, correction=correction)
        if verdict.verdict != "contradicted":
            return Verdict(keep=True, details=details)
        if self.correct and correction and correction != item.text:
            details["corrected"] = True
            return Verdict(keep=True, text=correction, details=details)
        return Verdict(keep=False, reason="contradicted", details=details)
