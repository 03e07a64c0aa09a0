"""What every `datagen` command shares: the consoles, the common options and opening a project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from datagen_core.config import LLMConfig
from datagen_core.errors import DatagenError
from datagen_core.store import DEFAULT_HOME, Store, project_path

out = Console()
err = Console(stderr=True)

Home = Annotated[Path, typer.Option("--home", envvar="DATAGEN_HOME", help="Folder holding project files.")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint; default: embedded model.")]
Model = Annotated[str | None, typer.Option("--model", help="Model name at --base-url (or DATAGEN_MODEL).")]

__all__ = ["DEFAULT_HOME", "BaseUrl", "Home", "Model", "err", "llm_config", "open_project", "out", "resume_llm_config",
           "split_list"]


def open_project(home: Path, name: str) -> Store:
    return Store.open(project_path(home, name))


def split_list(value: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] for comma-separated options (labels, runs, modes)."""
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def llm_config(base_url: str | None, model: str | None, in_flight: int | None = None) -> LLMConfig:
    """The model the flags (or DATAGEN_BASE_URL / DATAGEN_MODEL) name; none means the embedded model."""
    try:
        return LLMConfig.from_env(base_url, model, in_flight)
    except ValidationError as exc:
        raise DatagenError(exc.errors()[0]["msg"]) from None
    except ValueError as exc:
        raise DatagenError(str(exc)) from None


def resume_llm_config(recorded: dict[str, object], base_url: str | None, model: str | None,
                      in_flight: int | None) -> LLMConfig:
    """A resumed run keeps the model it started with unless the user names another one."""
    if base_url or model or os.environ.get("DATAGEN_BASE_URL"):
        return llm_config(base_url, model, in_flight)
    settings = {**recorded, **({"max_in_flight": in_flight} if in_flight else {})}
    return LLMConfig.model_validate(settings)
