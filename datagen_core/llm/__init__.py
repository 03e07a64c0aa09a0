"""The LLM layer: one facade (`LLM`) over interchangeable backends."""

from datagen_core.llm.facade import LLM, Completion, check_connection, make_backend

__all__ = ["LLM", "Completion", "check_connection", "make_backend"]
