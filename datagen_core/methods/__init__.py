"""Generation methods, registered by name; adding one is one file and one line here."""

from __future__ import annotations

import numpy as np

from .base import GenerationMethod, GenerationRequest, MethodContext, clean_output
from .genetic import GeneticMethod

METHODS: dict[str, type[GenerationMethod]] = {GeneticMethod.name: GeneticMethod}


def make_method(context: MethodContext, rng: np.random.Generator) -> GenerationMethod:
    return METHODS[context.config.method](context, rng)


__all__ = ["METHODS", "GenerationMethod", "GenerationRequest", "MethodContext", "clean_output", "make_method"]
