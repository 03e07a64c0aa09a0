"""What every `datagen` command shares: the consoles, the common options and opening a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .store import DEFAULT_HOME, Store, project_path

out = Console()
err = Console(stderr=True)

Home = Annotated[Path, typer.Option("--home", envvar="DATAGEN_HOME", help="Folder holding project files.")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint; default: embedded model.")]
Model = Annotated[str | None, typer.Option("--model", help="Model name at --base-url (or DATAGEN_MODEL).")]

__all__ = ["DEFAULT_HOME", "BaseUrl", "Home", "Model", "err", "open_project", "out", "split_list"]


def open_project(home: Path, name: str) -> Store:
    return Store.open(project_path(home, name))


def split_list(value: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] for comma-separated options (labels, runs, modes)."""
    return [item.strip() for item in value.split(",") if item.strip()] if value else []
