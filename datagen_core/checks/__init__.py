"""Checks (SPEC §3): one file per check, registered here in the order users see them.

A check judges items (fresh offspring in-run, or stored samples afterwards with `apply_check`) and returns
one verdict per item; `datagen_core.checks.apply` records the verdicts.
"""

from __future__ import annotations

from pydantic import ValidationError

from datagen_core.checks.base import Check, CheckContext, Item, Verdict
from datagen_core.checks.debias import DebiasCheck
from datagen_core.checks.dedup import DedupCheck
from datagen_core.checks.difficulty import DifficultyCheck
from datagen_core.checks.facts import FactsCheck
from datagen_core.checks.math import MathCheck
from datagen_core.checks.reflection import ReflectionCheck
from datagen_core.config import CheckSpec
from datagen_core.errors import DatagenError
from datagen_core.registry import CHECKS, Options, validation_message

for _check in (DedupCheck, ReflectionCheck, MathCheck, FactsCheck, DifficultyCheck, DebiasCheck):
    CHECKS.register(_check)


def make_check(name: str, options: Options | dict[str, object] | None = None) -> Check:
    """The check called `name` with the options a user chose (CLI, studio, a run's config), validated by the
    check's own options model; unknown names and bad values are one-line DatagenErrors."""
    plugin = CHECKS.get(name)
    if not isinstance(options, Options):
        try:
            options = plugin.Options.model_validate(options or {})
        except ValidationError as exc:
            raise DatagenError(f"the {name} check: {validation_message(exc)}") from None
    return plugin.from_options(options)


def in_run_checks(specs: tuple[CheckSpec, ...]) -> list[Check]:
    """The checks a run's config asks for, in the order they apply."""
    return [make_check(spec.name, spec.options) for spec in specs]


__all__ = ["CHECKS", "Check", "CheckContext", "DebiasCheck", "DedupCheck", "DifficultyCheck", "FactsCheck", "Item",
           "MathCheck", "ReflectionCheck", "Verdict", "in_run_checks", "make_check"]
