"""Central moment discrepancy to the real seeds (SPEC §4), overall and per label: how far a set drifted."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput


class CmdMetric(Metric):
    name = "cmd"
    title = "CMD"
    summary = "central moment discrepancy between the set's embeddings and the real seeds', overall and per label"
    columns = (("cmd", "CMD"),)
    reading = "distance to the real seeds, lower is closer"
    charted = True
    needs_reference = True

    def compute(self, data: MetricInput) -> dict[str, Any]:
        if data.reference_vectors is None or data.reference_labels is None or not len(data.texts) \
                or not len(data.reference_vectors):
            return {"cmd": None, "cmd_per_label": {}}
        labels, reference_labels = np.asarray(data.labels), np.asarray(data.reference_labels)
        per_label = {}
        for label in dict.fromkeys(data.labels):
            mine, theirs = labels == label, reference_labels == label
            if theirs.any():
                per_label[label] = metrics.cmd(data.vectors[mine], data.reference_vectors[theirs])
        return {"cmd": metrics.cmd(data.vectors, data.reference_vectors), "cmd_per_label": per_label}
