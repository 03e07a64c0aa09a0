"""What every `datagen` command shares: the consoles, the common options and opening a project."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError
from rich.console import Console

from datagen_core.config import REDACTED, LLMConfig, limits_from_env
from datagen_core.errors import DatagenError
from datagen_core.ingest import check_project_name
from datagen_core.store import DEFAULT_HOME, Store, project_path

# Markup off: labels, texts and names are the user's and may hold `[/x]`; styles are given as `style=` instead.
out = Console(markup=False)
err = Console(stderr=True, markup=False)

Home = Annotated[Path, typer.Option("--home", envvar="DATAGEN_HOME", help="Folder holding project files.")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint; default: embedded model.")]
Model = Annotated[str | None, typer.Option("--model", help="Model name at --base-url (or DATAGEN_MODEL).")]
FirstByteTimeout = Annotated[float | None, typer.Option(
    "--first-byte-timeout", min=0.001, help="Seconds to wait for an answer to begin (DATAGEN_FIRST_BYTE_TIMEOUT; 120)."
)]
Timeout = Annotated[float | None, typer.Option(
    "--timeout", min=0.001, help="Seconds a whole request may take (DATAGEN_TIMEOUT; 300).")]
Retries = Annotated[int | None, typer.Option(
    "--retries", min=0, max=20, help="Attempts after a transient fault (DATAGEN_RETRIES; 5).")]
GiveUpAfter = Annotated[float | None, typer.Option(
    "--give-up-after", min=0.001,
    help="Stop the run (resumable) when the endpoint answers nothing for this many seconds (DATAGEN_GIVE_UP_AFTER; "
         "300).")]

__all__ = ["DEFAULT_HOME", "BaseUrl", "Home", "Model", "err", "llm_config", "open_project", "out", "reachable",
           "readable_home", "resume_llm_config", "split_list", "writable_home"]


def readable_home(home: Path) -> Path:
    """`home` if it can hold projects: an existing file there is one clear line, not a confusing 'no project'."""
    if home.exists() and not home.is_dir():
        raise DatagenError(f"--home {home} is a file, not a folder of projects")
    return home


def writable_home(home: Path) -> Path:
    """`home` if a project can be created in it (the folder itself is made only when the project is)."""
    readable_home(home)
    existing = next(folder for folder in (home, *home.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise DatagenError(f"--home {home} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DatagenError(f"--home {home} is not writable ({existing} refuses new files)")
    return home


def open_project(home: Path, name: str) -> Store:
    check_project_name(name)
    return Store.open(project_path(readable_home(home), name))


def split_list(value: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] for comma-separated options (labels, runs, modes)."""
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def _check_endpoint(base_url: str | None, model: str | None) -> None:
    """A base URL that is no http(s) URL, or a blank model name, is refused before any request or record."""
    url = base_url or os.environ.get("DATAGEN_BASE_URL")
    if url:
        try:
            parts = urlsplit(url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a bad port or IPv6 bracket
            usable = False
        if not usable:
            raise DatagenError(f"base URL {url!r} is not an http(s) URL; give one like http://localhost:8000/v1")
    if model is not None and not model.strip():
        raise DatagenError("--model is empty; name the model the endpoint serves")


def llm_config(base_url: str | None, model: str | None, in_flight: int | None = None,
               limits: dict[str, float | None] | None = None) -> LLMConfig:
    """The model the flags (or DATAGEN_BASE_URL / DATAGEN_MODEL) name; none means the embedded model. `limits`:
    the timeout flags (`TIMEOUT_ENV` names their variables)."""
    _check_endpoint(base_url, model)
    try:
        return LLMConfig.from_env(base_url, model, in_flight, **(limits or {}))
    except ValidationError as exc:
        raise DatagenError(exc.errors()[0]["msg"]) from None
    except ValueError as exc:
        raise DatagenError(str(exc)) from None


def reachable(config: LLMConfig) -> LLMConfig:
    """`config` once its endpoint answered, so a run that cannot start is refused before it is recorded.

    The embedded model is not started here: its server starts with the run, which reports its own failures.
    """
    if config.backend != "openai":
        return config
    from datagen_core.llm import LLM

    async def check() -> None:
        llm = LLM.from_config(config, None, use_cache=False)
        try:
            await llm.check()
        finally:
            await llm.aclose()

    asyncio.run(check())
    return config


def resume_llm_config(recorded: dict[str, object], base_url: str | None, model: str | None,
                      in_flight: int | None, limits: dict[str, float | None] | None = None) -> LLMConfig:
    """A resumed run keeps the model it started with unless the user names another one; timeouts are today's."""
    if base_url or model or os.environ.get("DATAGEN_BASE_URL"):
        return llm_config(base_url, model, in_flight, limits)
    if REDACTED in str(recorded.get("base_url") or ""):
        raise DatagenError("the run's endpoint URL carried credentials, which are never stored: give --base-url "
                           "(or DATAGEN_BASE_URL) again")
    try:
        chosen = {**limits_from_env(), **{key: value for key, value in (limits or {}).items() if value is not None}}
        return LLMConfig.model_validate({**recorded, **chosen, **({"max_in_flight": in_flight} if in_flight else {})})
    except ValidationError as exc:
        raise DatagenError(exc.errors()[0]["msg"]) from None
    except ValueError as exc:
        raise DatagenError(str(exc)) from None
