"""`datagen doctor`: the start-up self-check, one line per check with the fix when it fails."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.text import Text

from datagen_core.cli.options import DEFAULT_HOME, Home, out
from datagen_core.doctor import diagnose

_COLOUR = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor_command(
    home: Home = DEFAULT_HOME,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Skip the embedder (saves ~10 s).")] = False,
) -> None:
    """Check this machine: Python, CPU, the model runtime's build, the embedded model, the embedder, the home."""
    report = diagnose(home, skip=frozenset({"embedder"}) if quick else frozenset())
    if as_json:
        out.print_json(json.dumps([asdict(f) for f in report.findings]))
    else:
        for status, rest in report.lines():
            mark = (f"{status:<4}", _COLOUR[status]) if status else " " * 4
            out.print(Text.assemble(mark, f" {rest}"), soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)
