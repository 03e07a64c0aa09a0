"""Self-BLEU (SPEC §4, Texygen): each text's BLEU-4 against all the others, on a stated sample."""

from __future__ import annotations

from typing import Any

from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics.base import Metric, MetricInput


class SelfBleuMetric(Metric):
    name = "self_bleu"
    title = "self-BLEU"
    summary = "mean BLEU-4 of each (sampled) text against all the others; the sample size is reported"
    columns = (("self_bleu", "self_BLEU"),)
    reading = "lower is more diverse"
    charted = True

    def compute(self, data: MetricInput) -> dict[str, Any]:
        bleu = metrics.self_bleu(data.texts, sample=data.sample, seed=data.seed)
        return {"self_bleu": bleu.value, "self_bleu_sampled": bleu.sampled}
