"""What the baselines sample from, proposed by the LLM before a run (SPEC §2): topics per label (zero-shot
topic) and values per attribute (AttrPrompt).

`next_request` is synchronous and the LLM facade is async, so these are separate steps (like gene proposal),
saved as versions in the store and editable.

Each proposal is grounded in the project's real texts: one question per real text ("what is the topic /
the <attribute> of this text?"), answered with one short phrase, and the distinct phrases are the proposal.
A small model cannot list abstract values on its own: asked for "a list of topics for label X" the embedded
SmolLM2-135M copies the answer skeleton, counts "topic_1, topic_2, ..." until its token budget runs out, or
repeats one phrase; asked about one real text it names a usable topic or value most of the time. The answer
schema (one string under the attribute's own name, a grammar for 1-5 plain words) leaves no room for
placeholders or lists, and worked exchanges from unrelated tasks show the shape of a good answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from datagen_core.config import LLMConfig, SamplingParams, ValueSet
from datagen_core.errors import DatagenError
from datagen_core.llm import LLM
from datagen_core.llm.structured import StructuredAnswer, ask_structured
from datagen_core.store import Store

_SYSTEM = "You are a careful data scientist. Answer with JSON only."

#: What the answer grammar allows (sent in the JSON schema; the embedded model is held to it): 1-5 words of
#: letters, digits and ' . -, the first starting with a letter, each at most 16 characters. It keeps a small
#: model from writing a sentence, copying the text or running on in one word; validation checks the looser
#: rules below, so an endpoint's "U.S. presidents (1789-1850)" still counts.
PHRASE_PATTERN = r"^[A-Za-z][A-Za-z0-9'.-]{0,15}( [A-Za-z0-9][A-Za-z0-9'.-]{0,15}){0,4}$"

#: Worked exchanges (text kind, attribute, text, answer) from unrelated tasks, asked and answered like the real
#: question: they teach the answer's shape, for attributes of content (the first three) and of form (the last
#: two). An answer repeating one of their values is a copy, not a proposal.
DEMOS: tuple[tuple[str, str, str, str], ...] = (
    ("product review", "tone", "Broke after two days. Never again.", "angry"),
    ("news headline", "region", "Berlin votes to expand tram network", "Europe"),
    ("recipe", "cuisine", "Simmer the lentils with cumin and serve with naan.", "Indian"),
    ("tweet", "punctuation", "omg cant wait for friday!!!", "exclamation marks"),
    ("support email", "opening word", "Hello, my order never arrived.", "Hello"),
)

SAMPLING = SamplingParams(temperature=0.3, top_p=0.95, max_tokens=64)

_PLACEHOLDER = re.compile(r"^<[^<>]*>$")
#: A phrase ending in one of these was cut off (the grammar's word limit) or never finished.
_UNFINISHED = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "is", "of", "on", "or", "the", "to", "was",
                         "were", "with"})


def _singular(phrase: str) -> str:
    """Casefolded without a plural s, so that "exclamation mark" counts as a copy of "exclamation marks"."""
    return phrase.casefold().removesuffix("s")


class _Phrase(BaseModel):
    """One short phrase; `phrase_model` renames the field to the attribute asked about. The validation context
    holds `echoes` (casefolded phrases that copy the prompt) and `text` (the real text asked about)."""

    model_config = ConfigDict(extra="forbid")
    phrase: str

    @field_validator("phrase")
    @classmethod
    def _usable(cls, phrase: str, info: ValidationInfo) -> str:
        phrase = " ".join(phrase.split()).strip(" .;,:-*\"'")
        words = phrase.split()
        context = info.context or {}
        if not phrase or _PLACEHOLDER.match(phrase):
            raise ValueError("an empty or placeholder phrase")
        if len(words) > 6 or len(phrase) > 60:
            raise ValueError(f"not a short phrase: {phrase[:60]!r}")
        if words[-1].casefold() in _UNFINISHED:
            raise ValueError(f"an unfinished phrase: {phrase!r}")
        if _singular(phrase) in context.get("echoes", ()):
            raise ValueError(f"a copy of the prompt: {phrase!r}")
        text = " ".join(str(context.get("text", "")).split()).casefold()
        if len(words) >= 3 and text.startswith(phrase.casefold()):
            raise ValueError(f"the start of the text, not a description of it: {phrase!r}")
        return phrase


@cache
def phrase_model(attribute: str) -> type[_Phrase]:
    """The answer model for one attribute: {"<attribute>": "<phrase>"}. Naming the key after the attribute
    puts the attribute right before the phrase the model writes, which keeps a small model on the question."""
    field = Field(alias=attribute, json_schema_extra={"pattern": PHRASE_PATTERN})
    return create_model("Phrase", __base__=_Phrase, phrase=(str, field))


def describe_prompt(text_kind: str, attribute: str, description: str, text: str) -> str:
    about = f" ({description})" if description else ""
    return (f"{text_kind[:1].upper()}{text_kind[1:]}: {' '.join(text.split())}\n"
            f"What is the {attribute}{about} of this {text_kind}? Answer in 1 to 3 words.")


def describe_messages(text_kind: str, attribute: str, description: str, text: str) -> list[dict[str, str]]:
    """The question about one real text, after the worked exchanges."""
    messages = [{"role": "system", "content": _SYSTEM}]
    for kind, demo_attribute, demo_text, value in DEMOS:
        messages += [{"role": "user", "content": describe_prompt(kind, demo_attribute, "", demo_text)},
                     {"role": "assistant", "content": json.dumps({demo_attribute: value})}]
    messages.append({"role": "user", "content": describe_prompt(text_kind, attribute, description, text)})
    return messages


@dataclass(frozen=True)
class Ask:
    """One question: the `attribute` of one real `text`, answered for `key` (a label or an attribute)."""

    key: str
    attribute: str
    description: str
    text: str


def ask_about_texts(
    store: Store,
    llm_config: LLMConfig,
    asks: Sequence[Ask],
    *,
    purpose: str,
    on_failure: Callable[[str, str], str],
    attempts: int = 3,
) -> dict[str, list[str]]:
    """Per key, the distinct phrases answered about its texts (in the order asked), or
    DatagenError with `on_failure(key, last problem)` for the first key with fewer than two.

    Each question is retried up to `attempts` times while its answer is unusable; a question that never gets
    a usable answer only costs its key one phrase. Never answered from the cache (asking again should give new
    proposals); a nonce in the sample index also keeps a seeded server from repeating its previous answers.
    """
    text_kind = store.project().text_kind
    llm = LLM.from_config(llm_config, store, use_cache=False)
    nonce = uuid.uuid4().hex[:8]
    demo_values = {_singular(value) for *_, value in DEMOS}

    async def ask(number: int, item: Ask) -> StructuredAnswer[_Phrase]:
        echoes = {*map(_singular, (item.attribute, item.key, text_kind)), *demo_values}
        return await ask_structured(
            llm, describe_messages(text_kind, item.attribute, item.description, item.text),
            phrase_model(item.attribute), sampling=SAMPLING, purpose=purpose, key=f"{nonce}:{number}",
            attempts=attempts, context={"echoes": echoes, "text": item.text},
        )

    async def run() -> list[StructuredAnswer[_Phrase]]:
        try:
            await llm.check()
            return await asyncio.gather(*(ask(number, item) for number, item in enumerate(asks)))
        finally:
            await llm.aclose()

    answers = asyncio.run(run())
    phrases: dict[str, dict[str, str]] = {}
    problems: dict[str, list[str]] = {}
    for item, answer in zip(asks, answers, strict=True):
        phrases.setdefault(item.key, {})
        problems.setdefault(item.key, []).extend(answer.problems)
        if answer.value is not None:
            phrases[item.key].setdefault(answer.value.phrase.casefold(), answer.value.phrase)
    chosen: dict[str, list[str]] = {}
    for key, unique in phrases.items():
        if len(unique) < 2:
            problem = problems[key][-1] if problems[key] else f"only one distinct phrase: {list(unique.values())}"
            raise DatagenError(on_failure(key, problem))
        chosen[key] = list(unique.values())
    return chosen


def _shuffled(texts: Sequence[str], rng: np.random.Generator) -> list[str]:
    return [texts[i] for i in rng.permutation(len(texts))]


def propose_topics(
    store: Store, llm_config: LLMConfig, count: int = 10, labels: Sequence[str] = (), attempts: int = 3
) -> dict[str, list[str]]:
    """Topics per label: the topic of each of up to `count` random real texts of the label, the distinct ones
    kept (so at most `count`, fewer when texts share a topic); nothing is saved here."""
    project = store.project()
    known = [lb.name for lb in store.labels()]
    unknown = [lb for lb in labels if lb not in known]
    if unknown:
        raise DatagenError(f"unknown label(s) {unknown}; the project's labels are {known}")
    rng = np.random.default_rng()
    texts = {label: _shuffled(store.real_examples(label)["text"].tolist(), rng) for label in (labels or known)}
    empty = [label for label, shown in texts.items() if not shown]
    if empty:
        raise DatagenError(f"label(s) {empty} have no real texts to propose topics from; set them yourself with "
                           f"`datagen topics set {project.name} LABEL TOPIC...`")
    asks = [Ask(label, "topic", "", text) for label, shown in texts.items() for text in shown[:count]]
    return ask_about_texts(
        store, llm_config, asks, purpose="topics", attempts=attempts,
        on_failure=lambda label, problem: (
            f"the model gave fewer than two usable topics for label {label!r} ({problem}); set them yourself "
            f"with `datagen topics set {project.name} {label} TOPIC...`"
        ),
    )


def propose_attribute_values(
    store: Store, llm_config: LLMConfig, count: int = 6, attributes: Sequence[str] = (), attempts: int = 3
) -> dict[str, list[str]]:
    """Values for each gene of the current gene set (or the named ones): the gene's value in each of up to
    `count` random real texts, taken from every label in turn, the distinct ones kept."""
    project = store.project()
    gene_set = store.gene_set()
    if gene_set is None or not gene_set.genes:
        raise DatagenError(
            f"the project has no genes to propose values for: `datagen genes use {project.name} KIND` (see "
            f"`datagen genes library`) or `datagen genes set {project.name} ...` first (or `datagen attributes set` "
            "to type values)"
        )
    genes = {gene.name.lower(): gene for gene in gene_set.genes}
    unknown = [a for a in attributes if a.lower() not in genes]
    if unknown:
        raise DatagenError(f"no gene(s) {unknown} in the current set {[g.name for g in gene_set.genes]}")
    rng = np.random.default_rng()
    asks: list[Ask] = []
    for gene in [genes[a.lower()] for a in attributes] if attributes else gene_set.genes:
        per_label = [_shuffled(store.real_examples(lb.name)["text"].tolist(), rng) for lb in store.labels()]
        spread = [text for row in itertools.zip_longest(*per_label) for text in row if text is not None]
        asks += [Ask(gene.name, gene.name, gene.description, text) for text in spread[:count]]
    return ask_about_texts(
        store, llm_config, asks, purpose="attributes", attempts=attempts,
        on_failure=lambda name, problem: (
            f"the model gave fewer than two usable values for attribute {name!r} ({problem}); set them "
            f"yourself with `datagen attributes set {project.name} '{name}' VALUE...`"
        ),
    )


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
