"""Plug-in registries: a generation method, a check, a set metric or a trainer registers once, and everything else
reads the registry.

A plug-in is a class with a `name` (what configs, the CLI and stored runs call it), a `title` (what the studio
shows), a one-line `summary` and an `Options` pydantic model (its settings with their defaults, bounds and
descriptions). Config validation, the CLI's choices and flags and the studio's widgets are all derived from these,
so a new method, check, metric or trainer is one file plus one `register` call (a plug-in outside the package
registers itself the same way: `METHODS.register(MyMethod)`).

The registries live below the engine (config validates against them) and import the built-in plug-ins lazily,
on first lookup, so importing the config never pulls in the engine.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

from datagen_core.errors import DatagenError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Options(BaseModel):
    """Base of every plug-in's options model: frozen, and unknown keys are an error, not silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoOptions(Options):
    """For a plug-in without settings."""


class Plugin(Protocol):
    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[Options]]


P = TypeVar("P", bound=Plugin)


class Registry(Mapping[str, type[P]], Generic[P]):
    """Plug-ins of one kind by name, in registration order (the built-ins' order is the order users see); a
    read-only mapping of name to plug-in class."""

    def __init__(self, kind: str, builtins: str) -> None:
        self.kind = kind
        self._builtins = builtins
        self._loaded = False
        self._plugins: dict[str, type[P]] = {}

    def register(self, plugin: type[P]) -> type[P]:
        """Add `plugin` (usable as a class decorator); a second plug-in under a taken name is an error."""
        name = getattr(plugin, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"a {self.kind} needs a lower-case identifier as its name, not {name!r}")
        for attribute in ("title", "summary", "Options"):
            if not hasattr(plugin, attribute):
                raise ValueError(f"{self.kind} {name!r} has no {attribute}")
        if not issubclass(plugin.Options, Options):
            raise ValueError(f"{self.kind} {name!r}: Options must subclass datagen_core.registry.Options")
        known = self._plugins.get(name)
        if known is not None and known is not plugin:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({known.__qualname__}, {plugin.__qualname__})")
        self._plugins[name] = plugin
        return plugin

    def unregister(self, name: str) -> None:
        """Remove a plug-in (a test's toy one)."""
        self._plugins.pop(name, None)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self._builtins)

    def names(self) -> tuple[str, ...]:
        self._load()
        return tuple(self._plugins)

    def get(self, name: str) -> type[P]:
        """The plug-in called `name`, or one clear line naming the choices."""
        self._load()
        plugin = self._plugins.get(name)
        if plugin is None:
            raise DatagenError(f"unknown {self.kind} {name!r}; use one of {', '.join(self._plugins)}")
        return plugin

    def __getitem__(self, name: str) -> type[P]:
        self._load()
        return self._plugins[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._plugins))

    def __len__(self) -> int:
        self._load()
        return len(self._plugins)

    def title(self, name: str) -> str:
        """The display title of `name`, or the name itself for one no longer registered (an old run's)."""
        self._load()
        plugin = self._plugins.get(name)
        return plugin.title if plugin is not None else name


# ------------------------------------------------------------------------------------ describing options
def field_choices(field: FieldInfo) -> tuple[Any, ...] | None:
    """The allowed values of a `Literal[...]` field (None for any other type)."""
    annotation = field.annotation
    return get_args(annotation) if get_origin(annotation) is Literal else None


def field_extra(field: FieldInfo, key: str, default: Any = None) -> Any:
    """Interface hints a plug-in puts in `Field(json_schema_extra={...})`: `flag` (the CLI flag's name when
    it is not the field's), `labels` (display text per choice), `shown` (False: set by the engine, not asked)."""
    extra = field.json_schema_extra
    return extra.get(key, default) if isinstance(extra, dict) else default


def asked_fields(model: type[Options]) -> dict[str, FieldInfo]:
    """The fields a user sets (the CLI and the studio ask for these; the others the engine fills in)."""
    return {name: field for name, field in model.model_fields.items() if field_extra(field, "shown", True)}


def field_title(name: str, field: FieldInfo) -> str:
    return field.title or name.replace("_", " ").capitalize()


def validation_message(error: Exception) -> str:
    """The first problem of a pydantic ValidationError as one line (the rest is for developers)."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(error)


#: Generation methods (`datagen_core.methods`): `GenerationMethod` subclasses.
METHODS: Registry[Any] = Registry("method", "datagen_core.methods")
#: Checks (`datagen_core.checks`): `Check` subclasses, applied in-run or afterwards.
CHECKS: Registry[Any] = Registry("check", "datagen_core.checks")
#: Downstream trainers (`datagen_core.evaluation.trainers`): `Trainer` subclasses that score a dataset by F1.
TRAINERS: Registry[Any] = Registry("trainer", "datagen_core.evaluation.trainers")
#: Set metrics (`datagen_core.evaluation.set_metrics`): `Metric` subclasses (diversity, distance to the real data).
METRICS: Registry[Any] = Registry("metric", "datagen_core.evaluation.set_metrics")
