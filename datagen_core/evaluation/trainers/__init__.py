"""Downstream trainers (SPEC §4): classifiers trained on a dataset and scored on held-out real data.

One file per trainer, registered here in the order users see them (the first is the default)."""

from __future__ import annotations

from datagen_core.evaluation.trainers.base import LabelledTexts, ProgressFn, Trainer, TrainerContext
from datagen_core.evaluation.trainers.finetune import FineTuneTrainer
from datagen_core.evaluation.trainers.logistic import LogisticTrainer
from datagen_core.registry import TRAINERS

for _trainer in (LogisticTrainer, FineTuneTrainer):
    TRAINERS.register(_trainer)

__all__ = ["TRAINERS", "FineTuneTrainer", "LabelledTexts", "LogisticTrainer", "ProgressFn", "Trainer",
           "TrainerContext"]
