"""The LLM layer: one facade (`LLM`) over interchangeable backends."""

from .facade import LLM, Completion, make_backend

__all__ = ["LLM", "Completion", "make_backend"]
