"""DataGen-style generation (SPEC §2): diverse few-shot examples, the dataset description, the user's numbered
constraints, and several items per call in a validated JSON answer.

Examples are chosen for diversity among the label's real seeds: greedily (a candidate joins when its
highest cosine similarity to those chosen is below a threshold t, t raised from 0 in steps of 0.05 until
enough are found; candidates come in a fresh random order each call) or one per k-means cluster (a random
member of each cluster, so calls differ). An answer that is not valid JSON becomes one filtered sample
(`invalid_json`) with the raw response kept, so a malformed answer never stops a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from datagen_core.config import SamplingParams
from datagen_core.llm.structured import parse_json_object
from datagen_core.methods.base import BaselineMethod, GenerationRequest, MethodContext, clean_output
from datagen_core.registry import Options
from datagen_core.store import PopulationMember

THRESHOLD_STEP = 0.05


class _Item(BaseModel):
    text: str


class _Answer(BaseModel):
    items: list[_Item] = Field(min_length=1)


def greedy_diverse(vectors: np.ndarray, k: int, order: Sequence[int]) -> list[int]:
    """Positions of up to k rows whose pairwise cosine similarity stays below the lowest threshold that finds k."""
    k = min(k, len(order))
    threshold = 0.0
    while True:
        chosen: list[int] = []
        for i in order:
            if not chosen or float(np.max(vectors[chosen] @ vectors[i])) < threshold:
                chosen.append(int(i))
                if len(chosen) == k:
                    return chosen
        threshold += THRESHOLD_STEP
        if threshold > 1.0 + THRESHOLD_STEP:  # duplicates everywhere: take the first k as they come
            return [int(i) for i in order[:k]]


def kmeans_clusters(vectors: np.ndarray, k: int, seed: int) -> list[list[int]]:
    """Row positions grouped into k clusters (fewer when there are fewer rows)."""
    from sklearn.cluster import KMeans

    k = min(k, len(vectors))
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors)
    return [list(np.flatnonzero(labels == c)) for c in range(k) if np.any(labels == c)]


class DataGenOptions(Options):
    """DataGen-style generation: diverse few-shot examples, a dataset description, several items per call."""

    items_per_call: int = Field(default=5, ge=1, le=20, title="Items per call",
                                description="Samples asked for in one call (JSON list).")
    examples: int = Field(default=3, ge=1, le=10, title="Examples per call",
                          description="Real examples of the label shown in each call, chosen for diversity.")
    selection: Literal["greedy", "kmeans"] = Field(
        default="greedy", title="Diverse examples",
        description="greedy cosine threshold raised by 0.05 until enough, or one per k-means cluster",
        json_schema_extra={"flag": "diverse"})
    description: str = Field(default="", title="Dataset description",
                             description="what the dataset is for; the project's task when empty",
                             json_schema_extra={"multiline": True})


class DataGenMethod(BaselineMethod):
    name = "datagen"
    title = "DataGen (several per call)"
    summary = "Diverse real examples and a dataset description; several samples per call."
    Options = DataGenOptions
    options: DataGenOptions

    @classmethod
    def describe(cls, options: DataGenOptions) -> str:
        return f"{options.items_per_call} items per call · {options.examples} {options.selection} examples"

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self._ids: dict[str, list[int]] = {}
        self._texts: dict[int, str] = {}
        self._vectors: dict[str, list[np.ndarray]] = {}
        self._clusters: dict[str, list[list[int]]] = {}

    def observe(self, label: str, members: Sequence[PopulationMember], vectors: np.ndarray) -> None:
        for member, vector in zip(members, vectors, strict=True):
            if member.origin == "real":
                self._ids.setdefault(label, []).append(member.id)
                self._vectors.setdefault(label, []).append(np.asarray(vector, dtype=np.float32))
                self._texts[member.id] = member.text
        self._clusters.pop(label, None)

    def _examples(self, label: str) -> list[int]:
        ids, vectors = self._ids[label], np.stack(self._vectors[label])
        if self.options.selection == "kmeans":
            if label not in self._clusters:
                self._clusters[label] = kmeans_clusters(vectors, self.options.examples, self.context.config.seed)
            return [ids[int(self.rng.choice(cluster))] for cluster in self._clusters[label]]
        order = [int(i) for i in self.rng.permutation(len(ids))]
        return [ids[i] for i in greedy_diverse(vectors, self.options.examples, order)]

    def next_request(self, label: str) -> GenerationRequest | None:
        return self.next_request_for(label, self.options.items_per_call)

    def next_request_for(self, label: str, room: int) -> GenerationRequest | None:
        if not self._ids.get(label):
            return None
        count = max(1, min(room, self.options.items_per_call))
        shown = self._examples(label)
        project = self.context.project
        description = self.options.description or project.task
        gene_set = self.context.gene_set
        constraints = gene_set.constraints if gene_set else ()
        lines = [f"You are generating a dataset for {description}. Each item is a {project.text_kind}.",
                 f"Here are real examples of the '{label}' category:"]
        lines += [f"Example {i}: {self._texts[sample]}" for i, sample in enumerate(shown, start=1)]
        wanted = [f"every item must be of the '{label}' category"]
        if self.context.label(label).description:
            wanted.append(f"every item must be about {self.context.label(label).description}")
        wanted += ["the items must differ from the examples and from each other in content and wording"]
        wanted += [f"respect this constraint: {constraint}" for constraint in constraints]
        lines.append(f"Write {count} new items. Requirements:")
        lines += [f"{i}. {req};" for i, req in enumerate(wanted, start=1)]
        lines.append('Answer with JSON only: {"items": [{"text": "..."}' + (", ..." if count > 1 else "") + "]}")
        prompt = "\n".join(lines)
        sampling = self.context.config.sampling
        system = f"You write {project.text_kind} items for a labelled dataset. Answer with JSON only."
        return GenerationRequest(
            label=label, messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            prompt=prompt, parent_ids=tuple(shown),
            details={"example_ids": list(shown), "selection": self.options.selection},
            sample_index=f"draw:{int(self.rng.integers(2**62))}", items=count, schema=_Answer.model_json_schema(),
            sampling=SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p,
                                    max_tokens=min(8192, sampling.max_tokens * count),
                                    repeat_penalty=sampling.repeat_penalty),
        )

    def parse_many(self, request: GenerationRequest, raw: str) -> list[tuple[str, str | None]]:
        try:
            answer = parse_json_object(raw, _Answer)
        except ValueError:
            return [(raw.strip()[:1000], "invalid_json")]
        return [clean_output(item.text, self.context.config.max_chars) for item in answer.items]
