"""Distinct-n: the share of a set's word n-grams (n = 1, 2) that are distinct."""

from __future__ import annotations

from typing import Any

from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput


class DistinctMetric(Metric):
    name = "distinct"
    title = "distinct-n"
    summary = "distinct unigrams and bigrams over all of them"
    columns = (("distinct_1", "distinct_1"), ("distinct_2", "distinct_2"))
    reading = "higher is more diverse"

    def compute(self, data: MetricInput) -> dict[str, Any]:
        return {"distinct_1": metrics.distinct_n(data.texts, 1), "distinct_2": metrics.distinct_n(data.texts, 2)}
