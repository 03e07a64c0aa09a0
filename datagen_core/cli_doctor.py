"""`datagen doctor`: the start-up self-check, one line per check with the fix when it fails."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape

from .cli_options import DEFAULT_HOME, Home, out
from .doctor import diagnose

_MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}


def doctor_command(
    home: Home = DEFAULT_HOME,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Skip the embedder (saves ~10 s).")] = False,
) -> None:
    """Check this machine: Python, CPU, the model runtime's build, the embedded model, the embedder, the home."""
    findings = diagnose(home, skip=frozenset({"embedder"}) if quick else frozenset()).findings
    if as_json:
        out.print_json(json.dumps([asdict(f) for f in findings]))
    else:
        for finding in findings:
            out.print(f"{_MARK[finding.status]} {finding.name:<9} {escape(finding.detail)}", soft_wrap=True)
            if finding.fix and finding.status != "ok":
                out.print(f"               fix: {escape(finding.fix)}", soft_wrap=True)
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)
