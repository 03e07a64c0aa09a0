"""AttrPrompt (SPEC §2): the LLM proposes values for each attribute (gene); each call samples one value per
attribute and asks for a text with exactly those values.

Values are proposed (or typed) before the run with `datagen attributes propose|set` and stored as versions;
`prepare` copies the latest version into the run's config, so the run records what it sampled from.
"""

from __future__ import annotations

import numpy as np

from ..config import AttrPromptOptions, RunConfig
from ..errors import DatagenError
from ..store import Store
from .base import BaselineMethod, GenerationRequest, MethodContext, stored_items


def missing_values(project: str) -> DatagenError:
    return DatagenError(
        f"the attrprompt method needs attribute values: run `datagen attributes propose {project}` "
        f"(or `datagen attributes set {project} ATTRIBUTE VALUE...`) first"
    )


class AttrPromptMethod(BaselineMethod):
    name = "attrprompt"

    @classmethod
    def prepare(cls, store: Store, config: RunConfig) -> RunConfig:
        version, values = stored_items(store, "attributes", config.attrprompt.values, config.attrprompt.version)
        if not values:
            raise missing_values(store.project().name)
        return config.model_copy(update={"attrprompt": AttrPromptOptions(version=version, values=values)})

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self.values = context.config.attrprompt.values
        if not self.values:  # a config built without `prepare_run_config`
            raise missing_values(context.project.name)

    def next_request(self, label: str) -> GenerationRequest | None:
        chosen = {name: values[int(self.rng.integers(len(values)))] for name, values in self.values.items()}
        prompt = self._prompt(label, requirements=[f"its '{name}' must be: {value}" for name, value in chosen.items()])
        version = self.context.config.attrprompt.version
        return self._request(label, prompt=prompt, details={"attributes": chosen, "attributes_version": version})
