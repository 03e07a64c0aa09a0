"""Zero-shot topic generation (SPEC §2): the LLM lists topics per label beforehand; each call samples one.

Topics are proposed (or typed) before the run with `datagen topics propose|set` and stored as versions;
`prepare` copies the latest version into the run's config, so the run records what it sampled from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field, field_validator

from datagen_core.config import RunConfig, clean_values
from datagen_core.errors import DatagenError
from datagen_core.methods.base import BaselineMethod, GenerationRequest, MethodContext, stored_items
from datagen_core.registry import Options
from datagen_core.store import Store


def missing_topics(project: str, labels: Sequence[str]) -> DatagenError:
    return DatagenError(
        f"the topic method needs topics for label(s) {list(labels)}: run `datagen topics propose {project}` "
        f"(or `datagen topics set {project} LABEL TOPIC...`) first"
    )


class TopicOptions(Options):
    """The topics a zero-shot-topic run samples from, copied from the store when the run is prepared.

    Kept in the run's config (not only referenced by version) so the run is self-describing and a resume
    samples from exactly the same topics even after the user edits them.
    """

    version: int | None = Field(default=None, json_schema_extra={"shown": False})
    topics: dict[str, tuple[str, ...]] = Field(default_factory=dict, json_schema_extra={"shown": False})

    @field_validator("topics")
    @classmethod
    def _clean(cls, topics: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {label: clean_values(values) for label, values in topics.items() if clean_values(values)}


class TopicMethod(BaselineMethod):
    name = "topic"
    title = "Zero-shot topic"
    summary = "Each call asks for a text about one topic of the label (`datagen topics propose|set`)."
    Options = TopicOptions
    options: TopicOptions

    @classmethod
    def prepare(cls, store: Store, config: RunConfig) -> RunConfig:
        version, topics = stored_items(store, "topics", config.options.topics, config.options.version)
        labels = list(config.labels) or [lb.name for lb in store.labels()]
        missing = [lb for lb in labels if not topics.get(lb)]
        if missing:
            raise missing_topics(store.project().name, missing)
        chosen = TopicOptions(version=version, topics={lb: topics[lb] for lb in labels})
        return config.model_copy(update={"options": chosen})

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self.topics = self.options.topics
        labels = list(context.config.labels) or [lb.name for lb in context.labels]
        missing = [lb for lb in labels if not self.topics.get(lb)]
        if missing:  # a config built without `prepare_run_config`
            raise missing_topics(context.project.name, missing)

    def next_request(self, label: str) -> GenerationRequest | None:
        topics = self.topics[label]
        topic = topics[int(self.rng.integers(len(topics)))]
        kind = self.context.project.text_kind
        prompt = self._prompt(label, instruction=f"Write a {kind} of the '{label}' category about this topic: {topic}.")
        return self._request(label, prompt=prompt,
                             details={"topic": topic, "topics_version": self.options.version})
