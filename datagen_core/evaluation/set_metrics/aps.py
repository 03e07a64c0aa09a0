"""Average pairwise similarity (SPEC §4): overall, within labels and across them."""

from __future__ import annotations

from typing import Any

from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput


class ApsMetric(Metric):
    name = "aps"
    title = "APS"
    summary = "average pairwise cosine similarity of the embeddings, all pairs, same-label and cross-label"
    columns = (("aps", "APS"), ("aps_intra", "APS_intra"), ("aps_inter", "APS_inter"))
    reading = "lower is more diverse"
    charted = True

    def compute(self, data: MetricInput) -> dict[str, Any]:
        return {"aps": metrics.aps(data.vectors), "aps_intra": metrics.aps(data.vectors, data.labels, "intra"),
                "aps_inter": metrics.aps(data.vectors, data.labels, "inter")}
