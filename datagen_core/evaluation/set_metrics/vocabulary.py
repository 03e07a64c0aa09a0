"""Vocabulary size (SPEC §4): distinct words over the whole set."""

from __future__ import annotations

from typing import Any

from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput


class VocabularyMetric(Metric):
    name = "vocabulary"
    title = "vocabulary"
    summary = "distinct words in the set"
    columns = (("vocabulary", "vocabulary"),)
    reading = "higher is more diverse"

    def compute(self, data: MetricInput) -> dict[str, Any]:
        return {"vocabulary": metrics.vocabulary_size(data.texts)}
