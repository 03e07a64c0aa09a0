"""A comparison of runs as a list of steps: what `datagen eval` and the Metrics page both compute.

Settings say which subjects (the real seeds, runs) and which figures; `plan` turns them into steps (a
subject's metrics, one downstream F1, one scale-curve point), each cached on its own by the `Evaluator`,
so an interface can read what is known, compute what is missing, or run the steps as a background job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datagen_core.errors import DatagenError
from datagen_core.evaluation.evaluator import REAL, Evaluation, Evaluator, TextSet
from datagen_core.evaluation.trainers import ProgressFn, Trainer
from datagen_core.store import Store

COMPARED_SETS = ("synthetic", "mixed")
"""The training sets a comparison may ask of a run (the real seeds always train on themselves, mode real)."""


@dataclass(frozen=True)
class ComparisonSettings:
    """Everything that decides which figures a comparison shows (and therefore their cache keys)."""

    runs: tuple[str, ...]
    real: bool = True
    downstream: bool = True
    trainer: str = "logistic"
    #: The trainer's options the user set (field, value); the rest are its `Options` defaults.
    trainer_settings: tuple[tuple[str, Any], ...] = ()
    modes: tuple[str, ...] = ("synthetic",)
    mix_ratio: float | None = None
    sizes: tuple[int, ...] = ()
    scale_mode: str = "synthetic"
    bleu_sample: int = 500
    seed: int = 0
    refresh: bool = False

    def __post_init__(self) -> None:
        if bad := [m for m in self.modes if m not in COMPARED_SETS]:
            raise DatagenError(f"modes are synthetic and mixed (the real seeds train in mode real), not {bad}")
        if self.scale_mode not in COMPARED_SETS:
            raise DatagenError(f"the scale curve trains on synthetic or mixed data, not {self.scale_mode!r}")

    @property
    def subjects(self) -> list[str]:
        return ([REAL] if self.real else []) + list(self.runs)

    def trainer_options(self) -> dict[str, Any]:
        return dict(self.trainer_settings)


@dataclass(frozen=True)
class Step:
    """One cached figure set: a subject's metrics, one downstream F1 or one scale point."""

    role: str  # metrics | downstream | scale
    subject: str
    mode: str | None = None
    size: int | None = None


def plan(settings: ComparisonSettings) -> list[Step]:
    """The steps for these settings: per subject its metrics, its downstream F1 per mode, its scale curve."""
    steps: list[Step] = []
    for subject in settings.subjects:
        steps.append(Step("metrics", subject))
        if not settings.downstream:
            continue
        steps.extend(Step("downstream", subject, mode) for mode in (["real"] if subject == REAL else settings.modes))
        if subject != REAL:
            steps.extend(Step("scale", subject, settings.scale_mode, n) for n in settings.sizes)
    return steps


def run_step(evaluator: Evaluator, trainer: Trainer | None, step: Step, settings: ComparisonSettings,
             progress: ProgressFn | None = None, test: TextSet | None = None) -> Evaluation:
    """Read (read-only evaluator) or compute one step; `test` replaces the project's held-out data."""
    refresh = settings.refresh and not evaluator.read_only
    if step.role == "metrics":
        return evaluator.metrics(step.subject, bleu_sample=settings.bleu_sample, seed=settings.seed, refresh=refresh)
    if trainer is None or step.mode is None:
        raise DatagenError(f"step {step} needs a trainer and a mode")
    # a scale point is the downstream F1 with `per_label` synthetic samples of each label
    return evaluator.downstream(step.subject, trainer, mode=step.mode, seed=settings.seed, progress=progress,
                                mix_ratio=settings.mix_ratio if step.role == "downstream" else None,
                                per_label=step.size, test=test, refresh=refresh)


def step_title(step: Step, names: dict[str, str]) -> str:
    what = {"metrics": "metrics", "downstream": f"{step.mode} F1", "scale": f"{step.mode} F1 at n={step.size}"}
    return f"{names[step.subject]}: {what[step.role]}"


def subject_names(store: Store, subjects: list[str]) -> dict[str, str]:
    """Short names for tables and legends: the real seeds, or a run's id and method."""
    methods = {run.id: run.method for run in store.runs()}
    return {s: "real seeds" if s == REAL else f"{s} · {methods.get(s, '?')}" for s in subjects}


def parse_sizes(text: str) -> tuple[int, ...]:
    """'5, 10, 20' -> (5, 10, 20); anything but positive whole numbers is a user error."""
    try:
        sizes = sorted({int(item) for item in text.replace(";", ",").split(",") if item.strip()})
    except ValueError:
        raise DatagenError(f"scale-curve sizes must be whole numbers separated by commas, not {text!r}") from None
    if any(n < 1 for n in sizes):
        raise DatagenError("scale-curve sizes must be at least 1 per label")
    return tuple(sizes)
