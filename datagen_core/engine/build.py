"""What a user asked for, turned into the `RunConfig` a run records: the one place both the CLI and the studio
build a run, so their runs cannot drift apart (defaults, the worked example, sampling, the checks' options)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from datagen_core.config import CheckSpec, LLMConfig, RunConfig, SamplingParams
from datagen_core.errors import DatagenError
from datagen_core.registry import CHECKS, METHODS, validation_message


def build_run_config(
    llm_config: LLMConfig,
    *,
    per_label: int,
    method: str = "genetic",
    options: Mapping[str, Any] | None = None,
    labels: Sequence[str] = (),
    project_labels: Sequence[str] = (),
    seed: int | None = None,
    checks: Sequence[str] = (),
    check_options: Mapping[str, Any] | None = None,
    dedup_distance: float | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    use_cache: bool = True,
) -> RunConfig:
    """A validated run config; every problem is one DatagenError line naming the setting.

    `options` are the method's own (its `Options` fields, by name). `check_options` is one flat set of check
    settings as the CLI's flags and the studio's widgets give them: each in-run check takes the keys its own
    options model declares. Labels equal to all of `project_labels` are recorded as "every label".
    """
    plugin = METHODS.get(method)
    if unknown := sorted(set(options or {}) - set(plugin.Options.model_fields)):
        raise DatagenError(f"the {method} method has no option(s) {unknown}")
    defaults = llm_config.default_sampling()
    sampling = SamplingParams(
        temperature=defaults.temperature if temperature is None else temperature,
        top_p=defaults.top_p if top_p is None else top_p,
        max_tokens=max_tokens or defaults.max_tokens,
        repeat_penalty=defaults.repeat_penalty,
    )
    if len(set(checks)) < len(checks):
        raise DatagenError("each check may be given once")
    try:
        specs = tuple(CheckSpec(name=name, options=_options_for(name, check_options or {})) for name in checks)
        return RunConfig(
            method=method,
            options=plugin.Options.model_validate(dict(options or {})),
            per_label=per_label,
            labels=() if project_labels and set(labels) == set(project_labels) else tuple(labels),
            seed=seed if seed is not None else random.randrange(2**31),
            sampling=sampling,
            worked_example=llm_config.backend == "embedded" and plugin.worked_example,
            use_cache=use_cache,
            dedup_distance=dedup_distance,
            checks=specs,
        )
    except ValidationError as exc:
        raise DatagenError(validation_message(exc)) from None


def _options_for(check: str, given: Mapping[str, Any]) -> dict[str, Any]:
    if check not in CHECKS:
        return {}  # CheckSpec names the choices
    fields = CHECKS.get(check).Options.model_fields
    return {key: value for key, value in given.items() if key in fields and value is not None}
