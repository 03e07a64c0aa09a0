"""Widgets derived from a plug-in's options model, so a new method or check needs no page code.

Each asked field (`datagen_core.registry.asked_fields`) becomes one widget chosen by its type: a radio for a
`Literal`, a checkbox for a bool, a number input for an int or float (with the field's bounds), a text input
(or area, for `multiline`) for a string. Titles, help and defaults come from the field.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st
from pydantic.fields import FieldInfo

from datagen_core.registry import Options, asked_fields, field_choices, field_extra, field_title

_SHORT = 3  # short widgets side by side per row


def _bounds(field: FieldInfo) -> tuple[Any, Any]:
    low = next((getattr(m, "ge", None) for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((getattr(m, "le", None) for m in field.metadata if getattr(m, "le", None) is not None), None)
    return low, high


def option_widget(container: Any, title: str, field: FieldInfo, key: str) -> Any:
    """One widget for `field` in `container`; returns what it holds."""
    help_text = field.description
    choices = field_choices(field)
    if choices:
        labels = field_extra(field, "labels", {}) or {}
        return container.radio(title, list(choices), index=list(choices).index(field.default), key=key,
                               format_func=lambda c: labels.get(c, str(c)), help=help_text)
    if field.annotation is bool:
        return container.checkbox(title, value=bool(field.default), key=key, help=help_text)
    if field.annotation in (int, float):
        low, high = _bounds(field)
        if field.annotation is int:
            value = container.number_input(title, min_value=low, max_value=high, value=int(field.default), step=1,
                                           key=key, help=help_text)
            return int(value)
        default = float(field.default)
        # A small default (a learning rate of 1e-4) in steps of its own size and in scientific notation: the
        # usual two decimals would show it as 0.00.
        small = 0 < abs(default) < 0.01
        return float(container.number_input(title, min_value=None if low is None else float(low),
                                            max_value=None if high is None else float(high), value=default,
                                            step=10 ** math.floor(math.log10(abs(default))) if small else 0.05,
                                            format="%.1e" if small else None, key=key, help=help_text))
    if field_extra(field, "multiline", False):
        return container.text_area(title, key=key, help=help_text, placeholder=help_text or "").strip()
    return container.text_input(title, value=str(field.default or ""), key=key, help=help_text).strip()


def options_inputs(model: type[Options], key_prefix: str) -> dict[str, Any]:
    """Widgets for every asked field of `model` (keys `key_prefix + field name`), values by field name."""
    fields = asked_fields(model)
    return shared_options_inputs({name: (field_title(name, field), field) for name, field in fields.items()},
                                 key_prefix)


def shared_options_inputs(fields: dict[str, tuple[str, FieldInfo]], key_prefix: str) -> dict[str, Any]:
    """Widgets for fields by name (title, field): short ones side by side, long text below them."""
    short = {name: spec for name, spec in fields.items() if not field_extra(spec[1], "multiline", False)}
    values: dict[str, Any] = {}
    names = list(short)
    for start in range(0, len(names), _SHORT):
        row = names[start:start + _SHORT]
        columns = st.columns(_SHORT) if len(names) > 1 else [st]
        for column, name in zip(columns, row, strict=False):
            title, field = short[name]
            values[name] = option_widget(column, title, field, key_prefix + name)
    for name, (title, field) in fields.items():
        if name not in short:
            values[name] = option_widget(st, title, field, key_prefix + name)
    return values


def merged_fields(models: dict[str, type[Options]]) -> dict[str, tuple[str, FieldInfo]]:
    """The asked fields of several plug-ins (name -> options model), one entry per field name; a field several
    declare gets one widget titled with their names ("Mode (math, facts)")."""
    owners: dict[str, list[str]] = {}
    fields: dict[str, FieldInfo] = {}
    for plugin, model in models.items():
        for name, field in asked_fields(model).items():
            owners.setdefault(name, []).append(plugin)
            fields.setdefault(name, field)
    return {name: (field_title(name, fields[name]) if len(owners[name]) == 1
                   else f"{name.replace('_', ' ').capitalize()} ({', '.join(owners[name])})", fields[name])
            for name in fields}
