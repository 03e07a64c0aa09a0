"""Generation methods: one file per method, registered here in the order users see them."""

from __future__ import annotations

import numpy as np

from datagen_core.config import RunConfig
from datagen_core.methods.attrprompt import AttrPromptMethod
from datagen_core.methods.base import GenerationMethod, GenerationRequest, MethodContext, clean_output
from datagen_core.methods.datagen import DataGenMethod
from datagen_core.methods.few_shot import FewShotMethod
from datagen_core.methods.genetic import GeneticMethod
from datagen_core.methods.topic import TopicMethod
from datagen_core.methods.zero_shot import ZeroShotMethod
from datagen_core.registry import METHODS
from datagen_core.store import Store

for _method in (GeneticMethod, ZeroShotMethod, FewShotMethod, TopicMethod, AttrPromptMethod, DataGenMethod):
    METHODS.register(_method)


def make_method(context: MethodContext, rng: np.random.Generator) -> GenerationMethod:
    return METHODS.get(context.config.method)(context, rng)


def describe_options(config: RunConfig) -> str:
    """A run's method options in a few words (a run of a method no longer registered: "")."""
    return METHODS.get(config.method).describe(config.options) if config.method in METHODS else ""


def prepare_run_config(store: Store, config: RunConfig) -> RunConfig:
    """The config a new run should record: the method copies in what it reads from the store (topics,
    attribute values) and fails with a DatagenError saying what to do when the project lacks it."""
    return METHODS.get(config.method).prepare(store, config)


__all__ = [
    "METHODS",
    "GenerationMethod",
    "GenerationRequest",
    "MethodContext",
    "clean_output",
    "describe_options",
    "make_method",
    "prepare_run_config",
]
