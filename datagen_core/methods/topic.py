"""Zero-shot topic generation (SPEC §2): the LLM lists topics per label beforehand; each call samples one.

Topics are proposed (or typed) before the run with `datagen topics propose|set` and stored as versions;
`prepare` copies the latest version into the run's config, so the run records what it sampled from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import RunConfig, TopicOptions
from ..errors import DatagenError
from ..store import Store
from .base import BaselineMethod, GenerationRequest, MethodContext, stored_items


def missing_topics(project: str, labels: Sequence[str]) -> DatagenError:
    return DatagenError(
        f"the topic method needs topics for label(s) {list(labels)}: run `datagen topics propose {project}` "
        f"(or `datagen topics set {project} LABEL TOPIC...`) first"
    )


class TopicMethod(BaselineMethod):
    name = "topic"

    @classmethod
    def prepare(cls, store: Store, config: RunConfig) -> RunConfig:
        version, topics = stored_items(store, "topics", config.topic.topics, config.topic.version)
        labels = list(config.labels) or [lb.name for lb in store.labels()]
        missing = [lb for lb in labels if not topics.get(lb)]
        if missing:
            raise missing_topics(store.project().name, missing)
        chosen = TopicOptions(version=version, topics={lb: topics[lb] for lb in labels})
        return config.model_copy(update={"topic": chosen})

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self.topics = context.config.topic.topics
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
                             details={"topic": topic, "topics_version": self.context.config.topic.version})
