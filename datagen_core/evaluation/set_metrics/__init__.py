"""Set metrics (SPEC §4): one file per metric, registered here in the order tables show them."""

from __future__ import annotations

from datagen_core.evaluation.set_metrics.aps import ApsMetric
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput
from datagen_core.evaluation.set_metrics.cmd import CmdMetric
from datagen_core.evaluation.set_metrics.distinct import DistinctMetric
from datagen_core.evaluation.set_metrics.remote_clique import RemoteCliqueMetric
from datagen_core.evaluation.set_metrics.self_bleu import SelfBleuMetric
from datagen_core.evaluation.set_metrics.vocabulary import VocabularyMetric
from datagen_core.registry import METRICS

for _metric in (ApsMetric, CmdMetric, VocabularyMetric, RemoteCliqueMetric, SelfBleuMetric, DistinctMetric):
    METRICS.register(_metric)


def legend() -> str:
    """How to read each metric, in one line (the tables' caption)."""
    return " · ".join(f"{metric.title}: {metric.reading}" for metric in METRICS.values())


__all__ = ["METRICS", "Metric", "MetricInput", "legend"]
