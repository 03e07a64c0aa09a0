"""Command-line flags derived from the plug-ins' options models, so a new method or check needs no CLI code.

Each asked field of each plug-in's `Options` becomes one flag (`--items-per-call`, or the name the field gives in
`json_schema_extra={"flag": ...}`); plug-ins declaring the same field share its flag. The command's signature is
rebuilt from the registry each time the CLI starts (`refresh_signature`), so a plug-in registered by the user's
own code shows up in `--help` too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from annotated_types import Ge, Le
from pydantic.fields import FieldInfo
from rich.table import Table

from datagen_core.errors import DatagenError
from datagen_core.registry import Registry, asked_fields, field_choices, field_extra


@dataclass(frozen=True)
class Flag:
    """One flag: the keyword it arrives as, the option field it sets, and the plug-ins that read it."""

    keyword: str
    flag: str
    #: plug-in name -> the option field the flag sets in it
    owners: dict[str, str]
    info: FieldInfo

    @property
    def choices(self) -> tuple[Any, ...] | None:
        return field_choices(self.info)

    def parameter(self) -> inspect.Parameter:
        field = self.info
        help_text = f"{', '.join(self.owners)}: {(field.description or field.title or self.keyword).rstrip('.')}"
        if self.choices:
            help_text += f" ({' | '.join(map(str, self.choices))}; default {field.default})"
        elif field.annotation is not bool and field.default not in (None, ""):
            help_text += f" (default {field.default})"
        limits = {type(m): m for m in field.metadata}
        if field.annotation is bool:
            option = typer.Option(f"{self.flag}/--no-{self.flag.removeprefix('--')}", help=help_text,
                                  show_default=False)
            kind: Any = bool
        else:
            kind = field.annotation if field.annotation in (int, float) else str
            option = typer.Option(self.flag, help=help_text, show_default=False,
                                  min=getattr(limits.get(Ge), "ge", None), max=getattr(limits.get(Le), "le", None))
        return inspect.Parameter(self.keyword, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=Annotated[kind | None, option])

    def value(self, given: Any) -> Any:
        """`given` checked against the field's choices, as one line naming the flag."""
        choices = self.choices
        if choices and given not in choices:
            allowed = " or ".join(f"'{c}'" for c in choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
            raise DatagenError(f"{self.flag} must be {allowed}, not {given!r}")
        return given


def plugin_flags(registry: Registry[Any], *, plugins: Callable[[Any], bool] = lambda plugin: True) -> list[Flag]:
    """The flags of every (chosen) plug-in of `registry`, one per option field, in registration order."""
    flags: dict[str, Flag] = {}
    for plugin in registry.values():
        if not plugins(plugin):
            continue
        for name, field in asked_fields(plugin.Options).items():
            flag = "--" + str(field_extra(field, "flag", name)).replace("_", "-")
            keyword = flag.removeprefix("--").replace("-", "_")
            known = flags.get(keyword)
            if known is not None and known.info.annotation != field.annotation:
                raise ValueError(f"{flag}: {', '.join(known.owners)} and {plugin.name} declare it with other types")
            owners = {**(known.owners if known else {}), plugin.name: name}
            flags[keyword] = Flag(keyword, flag, owners, known.info if known else field)
    return list(flags.values())


def refresh_signature(command: Callable[..., Any], fixed: list[inspect.Parameter], flags: list[Flag]) -> None:
    """Give `command` (which takes `**values`) the fixed parameters plus one per flag, for typer to read."""
    taken = {p.name for p in fixed}
    clash = [flag.flag for flag in flags if flag.keyword in taken]
    if clash:
        raise ValueError(f"plug-in flag(s) {clash} clash with the command's own options")
    command.__signature__ = inspect.Signature([*fixed, *(flag.parameter() for flag in flags)])  # type: ignore[attr-defined]


def fixed_parameters(command: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters a command declares itself (its `**values` aside)."""
    return [p for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD]


def options_for(plugin: Any, flags: list[Flag], values: Mapping[str, Any], *, strict: str = "") -> dict[str, Any]:
    """The options of `plugin` among the flag `values` the user gave. With `strict` (how the plug-in was chosen,
    e.g. "--method"), a given flag that `plugin` does not read is an error instead of being ignored."""
    chosen: dict[str, Any] = {}
    for flag in flags:
        given = values.get(flag.keyword)
        if given is None:
            continue
        if plugin.name not in flag.owners:
            if strict:
                raise DatagenError(f"{flag.flag} applies to {strict} {' or '.join(flag.owners)} only")
            continue
        chosen[flag.owners[plugin.name]] = flag.value(given)
    return chosen


def plugins_table(registry: Any, title: str) -> Table:
    """The registered plug-ins with their titles, summaries and options (`datagen methods|checks|trainers`)."""
    table = Table(title, "title", "options", "what it does")
    for plugin in registry.values():
        fields = ", ".join(f"{key}={field.default!r}" for key, field in asked_fields(plugin.Options).items())
        table.add_row(plugin.name, plugin.title, fields or "-", plugin.summary)
    return table
