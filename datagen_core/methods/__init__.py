"""Generation methods, registered by name; adding one is one file and one line here."""

from __future__ import annotations

import numpy as np

from ..config import RunConfig
from ..store import Store
from .attrprompt import AttrPromptMethod
from .base import GenerationMethod, GenerationRequest, MethodContext, clean_output
from .datagen import DataGenMethod
from .few_shot import FewShotMethod
from .genetic import GeneticMethod
from .topic import TopicMethod
from .zero_shot import ZeroShotMethod

METHODS: dict[str, type[GenerationMethod]] = {
    method.name: method
    for method in (GeneticMethod, ZeroShotMethod, FewShotMethod, TopicMethod, AttrPromptMethod, DataGenMethod)
}


def make_method(context: MethodContext, rng: np.random.Generator) -> GenerationMethod:
    return METHODS[context.config.method](context, rng)


def prepare_run_config(store: Store, config: RunConfig) -> RunConfig:
    """The config a new run should record: the method copies in what it reads from the store (topics,
    attribute values) and fails with a DatagenError saying what to do when the project lacks it."""
    return METHODS[config.method].prepare(store, config)


__all__ = [
    "METHODS", "GenerationMethod", "GenerationRequest", "MethodContext", "clean_output", "make_method",
    "prepare_run_config",
]
