"""Remote-clique (SPEC §4): the mean pairwise Euclidean distance of the embeddings."""

from __future__ import annotations

from typing import Any

from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput


class RemoteCliqueMetric(Metric):
    name = "remote_clique"
    title = "remote-clique"
    summary = "mean pairwise Euclidean distance of the embeddings"
    columns = (("remote_clique", "remote_clique"),)
    reading = "higher is more diverse"

    def compute(self, data: MetricInput) -> dict[str, Any]:
        return {"remote_clique": metrics.remote_clique(data.vectors)}
