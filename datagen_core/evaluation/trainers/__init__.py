"""Downstream trainers (SPEC §4): classifiers trained on a dataset and scored on held-out real data."""

from __future__ import annotations

from datagen_core.evaluation.trainers.base import LabelledTexts, ProgressFn, Trainer
from datagen_core.evaluation.trainers.logistic import LogisticTrainer

TRAINER_NAMES = ("logistic", "finetune")

__all__ = ["TRAINER_NAMES", "LabelledTexts", "LogisticTrainer", "ProgressFn", "Trainer"]
