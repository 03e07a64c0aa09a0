"""Quality modules (SPEC §3), registered by name; adding one is one file and one line here."""

from __future__ import annotations

from ..config import CheckSpec
from ..errors import DatagenError
from .base import CheckContext, Item, QualityCheck, Verdict
from .debias import ShortcutRephrasing
from .dedup import GroupCheck
from .difficulty import DifficultyEnhancement
from .fact_check import FactCheck
from .math_check import MODES, MathCheck
from .reflection import SelfReflection

CHECKS: dict[str, type[QualityCheck]] = {check.name: check for check in (GroupCheck, SelfReflection, MathCheck,
                                                                          DifficultyEnhancement, ShortcutRephrasing,
                                                                          FactCheck)}


def make_check(name: str, *, rounds: int = 5, mode: str = "flag", distance: float = 0.3,
               text_similarity: float = 0.8) -> QualityCheck:
    """The one place a module is built from what a user chose (CLI, studio, a run's config); each module reads
    only its own options: dedup distance and text similarity, reflection rounds, math and facts the mode."""
    if name not in CHECKS:
        raise DatagenError(f"unknown check {name!r}; use one of {', '.join(sorted(CHECKS))}")
    if mode not in MODES:
        raise DatagenError(f"mode must be 'flag' or 'correct', not {mode!r}")
    if name == "dedup":
        return GroupCheck(distance=distance, text_similarity=text_similarity)
    if name == "reflection":
        return SelfReflection(rounds=rounds)
    if name == "math":
        return MathCheck(mode=mode)  # type: ignore[arg-type]
    if name == "facts":
        return FactCheck(correct=mode == "correct")
    return CHECKS[name]()


def in_run_checks(specs: tuple[CheckSpec, ...]) -> list[QualityCheck]:
    """The modules a run's config asks for, in the order they apply."""
    return [make_check(spec.name, rounds=spec.rounds, mode=spec.mode) for spec in specs]


__all__ = ["CHECKS", "CheckContext", "DifficultyEnhancement", "FactCheck", "GroupCheck", "Item", "MathCheck",
           "QualityCheck", "SelfReflection", "ShortcutRephrasing", "Verdict", "in_run_checks", "make_check"]
