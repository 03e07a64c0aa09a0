"""AttrPrompt (SPEC §2): the LLM proposes values for each attribute (gene); each call samples one value per
attribute and asks for a text with exactly those values.

Values are proposed (or typed) before the run with `datagen attributes propose|set` and stored as versions;
`prepare` copies the latest version into the run's config, so the run records what it sampled from.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from datagen_core.config import RunConfig, clean_values
from datagen_core.errors import DatagenError
from datagen_core.methods.base import BaselineMethod, GenerationRequest, MethodContext, stored_items
from datagen_core.registry import Options
from datagen_core.store import Store


def missing_values(project: str) -> DatagenError:
    return DatagenError(
        f"the attrprompt method needs attribute values: run `datagen attributes propose {project}` "
        f"(or `datagen attributes set {project} ATTRIBUTE VALUE...`) first"
    )


class AttrPromptOptions(Options):
    """The attribute values an AttrPrompt run samples from (one value per attribute per call), copied like topics."""

    version: int | None = Field(default=None, json_schema_extra={"shown": False})
    values: dict[str, tuple[str, ...]] = Field(default_factory=dict, json_schema_extra={"shown": False})

    @field_validator("values")
    @classmethod
    def _clean(cls, values: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {name: clean_values(vals) for name, vals in values.items() if clean_values(vals)}


class AttrPromptMethod(BaselineMethod):
    name = "attrprompt"
    title = "AttrPrompt"
    summary = "Each call samples one value per attribute (`datagen attributes propose|set`)."
    Options = AttrPromptOptions
    options: AttrPromptOptions

    @classmethod
    def prepare(cls, store: Store, config: RunConfig) -> RunConfig:
        version, values = stored_items(store, "attributes", config.options.values, config.options.version)
        if not values:
            raise missing_values(store.project().name)
        return config.model_copy(update={"options": AttrPromptOptions(version=version, values=values)})

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self.values = self.options.values
        if not self.values:  # a config built without `prepare_run_config`
            raise missing_values(context.project.name)

    def next_request(self, label: str) -> GenerationRequest | None:
        chosen = {name: values[int(self.rng.integers(len(values)))] for name, values in self.values.items()}
        prompt = self._prompt(label, requirements=[f"its '{name}' must be: {value}" for name, value in chosen.items()])
        version = self.options.version
        return self._request(label, prompt=prompt, details={"attributes": chosen, "attributes_version": version})
