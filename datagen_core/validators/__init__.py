"""Quality modules (SPEC §3), registered by name; adding one is one file and one line here."""

from __future__ import annotations

from .base import CheckContext, Item, QualityCheck, Verdict
from .debias import ShortcutRephrasing
from .dedup import GroupCheck
from .difficulty import DifficultyEnhancement
from .fact_check import FactCheck
from .math_check import MathCheck
from .reflection import SelfReflection

CHECKS: dict[str, type[QualityCheck]] = {check.name: check for check in (GroupCheck, SelfReflection, MathCheck,
                                                                          DifficultyEnhancement, ShortcutRephrasing,
                                                                          FactCheck)}

__all__ = ["CHECKS", "CheckContext", "DifficultyEnhancement", "FactCheck", "GroupCheck", "Item", "MathCheck",
           "QualityCheck", "SelfReflection", "ShortcutRephrasing", "Verdict"]
