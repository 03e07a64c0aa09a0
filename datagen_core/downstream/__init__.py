"""Downstream trainers (SPEC §4): classifiers trained on a dataset and scored on held-out real data."""

from __future__ import annotations

from .base import LabelledTexts, ProgressFn, Trainer
from .logistic import LogisticTrainer

TRAINER_NAMES = ("logistic", "finetune")

__all__ = ["TRAINER_NAMES", "LabelledTexts", "LogisticTrainer", "ProgressFn", "Trainer"]
