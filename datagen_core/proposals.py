"""What the baselines sample from, proposed by the LLM before a run (SPEC §2): topics per label (zero-shot
topic) and values per attribute (AttrPrompt).

`next_request` is synchronous and the LLM facade is async, so these are separate steps (like gene proposal),
saved as versions in the store and editable. Each question is one validated JSON answer with retries
(`llm.structured.ask_structured`); `ask_all` asks them concurrently over one facade and turns a question
that never got a usable answer into a DatagenError saying what to do.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config import LLMConfig, SamplingParams, ValueSet
from .errors import DatagenError
from .llm import LLM
from .llm.structured import ask_structured
from .store import Store

M = TypeVar("M", bound=BaseModel)

_SYSTEM = "You are a careful data scientist. Answer with JSON only."


def ask_all(
    store: Store,
    llm_config: LLMConfig,
    questions: Mapping[str, list[dict[str, str]]],
    model: type[M],
    *,
    purpose: str,
    on_failure: Callable[[str, str], str],
    attempts: int = 3,
    sampling: SamplingParams | None = None,
) -> dict[str, M]:
    """Every question (key -> messages) answered with a validated `model`, or DatagenError with
    `on_failure(key, last problem)` for the first question whose `attempts` answers were all unusable.

    Never answered from the cache (asking again should give new proposals); a nonce in the sample index
    also keeps a seeded server from repeating its previous proposal.
    """
    sampling = sampling or SamplingParams(temperature=0.7, top_p=0.95, max_tokens=600)
    llm = LLM.from_config(llm_config, store, use_cache=False)
    nonce = uuid.uuid4().hex[:8]

    async def run() -> dict[str, M]:
        try:
            await llm.check()
            answers = await asyncio.gather(*(
                ask_structured(llm, messages, model, sampling=sampling, purpose=purpose, key=f"{nonce}:{key}",
                               attempts=attempts)
                for key, messages in questions.items()
            ))
        finally:
            await llm.aclose()
        chosen: dict[str, M] = {}
        for key, answer in zip(questions, answers, strict=True):
            if answer.value is None:
                raise DatagenError(on_failure(key, answer.problems[-1] if answer.problems else "no answer"))
            chosen[key] = answer.value
        return chosen

    return asyncio.run(run())


_PLACEHOLDER = re.compile(r"^<[^<>]*>$|^\.\.\.$")


class _Phrases(BaseModel):
    """Short phrases, whitespace-normalised and unique (case-insensitive); at least two distinct."""

    model_config = ConfigDict(extra="forbid")  # the JSON schema sent then says additionalProperties: false

    @staticmethod
    def _clean(phrases: list[str]) -> list[str]:
        unique: dict[str, str] = {}
        for phrase in phrases:
            phrase = " ".join(phrase.split()).strip(" .;,-*")
            if phrase and not _PLACEHOLDER.match(phrase):  # small models copy the answer skeleton's "<topic>"
                unique.setdefault(phrase.casefold(), phrase)
        if len(unique) < 2:
            raise ValueError("fewer than two distinct non-empty entries")
        return list(unique.values())


class TopicProposal(_Phrases):
    topics: list[str] = Field(min_length=2, max_length=100)

    @field_validator("topics")
    @classmethod
    def _distinct(cls, topics: list[str]) -> list[str]:
        return cls._clean(topics)


class ValueProposal(_Phrases):
    values: list[str] = Field(min_length=2, max_length=100)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        return cls._clean(values)


def topic_prompt(task: str, text_kind: str, label: str, description: str, count: int) -> str:
    about = f" ({description})" if description else ""
    return (
        f"We are building a dataset for the {task} task. Each sample is a {text_kind}.\n"
        f"List {count} diverse topics that a {text_kind} of the '{label}' category{about} can be about. "
        f"Each topic is a short phrase; together they cover the variety of real {text_kind}s of this category.\n"
        'Answer as JSON: {"topics": ["<topic>", ...]}'
    )


def attribute_prompt(task: str, text_kind: str, labels: Sequence[str], attribute: str, description: str,
                     count: int) -> str:
    about = f" ({description})" if description else ""
    return (
        f"We are building a dataset for the {task} task. Each sample is a {text_kind} with one of these "
        f"labels: {', '.join(labels)}.\n"
        f"One attribute of a {text_kind} is '{attribute}'{about}. List {count} distinct values this attribute "
        "can take, each a short phrase a writer can follow (for example, for 'tone': casual, urgent, formal).\n"
        'Answer as JSON: {"values": ["<value>", ...]}'
    )


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}]


def propose_topics(
    store: Store, llm_config: LLMConfig, count: int = 10, labels: Sequence[str] = (), attempts: int = 3
) -> dict[str, list[str]]:
    """Topics per label (one call per label, all at once), at most `count` each; nothing is saved here."""
    project = store.project()
    known = {lb.name: lb for lb in store.labels()}
    unknown = [lb for lb in labels if lb not in known]
    if unknown:
        raise DatagenError(f"unknown label(s) {unknown}; the project's labels are {list(known)}")
    questions = {
        name: _messages(topic_prompt(project.task, project.text_kind, name, known[name].description, count))
        for name in (labels or list(known))
    }
    answers = ask_all(
        store, llm_config, questions, TopicProposal, purpose="topics", attempts=attempts,
        on_failure=lambda label, problem: (
            f"the model gave no usable topics for label {label!r} in {attempts} tries ({problem}); set them "
            f"yourself with `datagen topics set {project.name} {label} TOPIC...`"
        ),
    )
    return {label: answer.topics[:count] for label, answer in answers.items()}


def propose_attribute_values(
    store: Store, llm_config: LLMConfig, count: int = 6, attributes: Sequence[str] = (), attempts: int = 3
) -> dict[str, list[str]]:
    """Values for each gene of the current gene set (or the named ones), one call per attribute."""
    project = store.project()
    gene_set = store.gene_set()
    if gene_set is None or not gene_set.genes:
        raise DatagenError(
            f"the project has no genes to propose values for: run `datagen genes propose {project.name}` or "
            f"`datagen genes set {project.name} ...` first (or `datagen attributes set` to type values)"
        )
    genes = {gene.name.lower(): gene for gene in gene_set.genes}
    unknown = [a for a in attributes if a.lower() not in genes]
    if unknown:
        raise DatagenError(f"no gene(s) {unknown} in the current set {[g.name for g in gene_set.genes]}")
    chosen = [genes[a.lower()] for a in attributes] if attributes else list(gene_set.genes)
    labels = [lb.name for lb in store.labels()]
    questions = {
        gene.name: _messages(attribute_prompt(project.task, project.text_kind, labels, gene.name, gene.description,
                                              count))
        for gene in chosen
    }
    answers = ask_all(
        store, llm_config, questions, ValueProposal, purpose="attributes", attempts=attempts,
        on_failure=lambda name, problem: (
            f"the model gave no usable values for attribute {name!r} in {attempts} tries ({problem}); set them "
            f"yourself with `datagen attributes set {project.name} '{name}' VALUE...`"
        ),
    )
    return {name: answer.values[:count] for name, answer in answers.items()}


def save_values(
    store: Store, kind: str, updates: Mapping[str, Sequence[str]], source: str, note: str = "",
    gene_set_version: int | None = None,
) -> ValueSet:
    """A new version: the latest one with the given keys replaced (an empty list removes a key)."""
    latest = store.value_set(kind)
    items: dict[str, Sequence[str]] = dict(latest.items) if latest else {}
    for key, values in updates.items():
        items.pop(key, None)
        if values:
            items[key] = list(values)
    return store.add_value_set(kind, items, source, note=note, gene_set_version=gene_set_version)
