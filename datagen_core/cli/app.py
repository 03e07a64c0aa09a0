"""`datagen`: the command line over the engine. Every user error is one line on stderr and exit code 1.

One module per command group (`project`, `values`, `run`, `eval`, `doctor`); this one assembles them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer
from pydantic import ValidationError

from datagen_core.cli import project, run, values
from datagen_core.cli.doctor import doctor_command
from datagen_core.cli.eval import eval_command, heldout_app, trainers_command
from datagen_core.cli.eval import refresh as eval_refresh
from datagen_core.cli.options import err, out
from datagen_core.errors import DatagenError
from datagen_core.registry import validation_message

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Genetic Prompt Studio: synthetic labelled text.",
)
app.command("init")(project.init)
app.command("projects")(project.projects)
app.add_typer(project.labels_app, name="labels")
app.add_typer(values.genes_app, name="genes")
app.add_typer(values.topics_app, name="topics")
app.add_typer(values.attributes_app, name="attributes")
app.command("methods")(run.methods_command)
app.command("checks")(run.checks_command)
app.command("run")(run.run)
app.command("runs")(run.runs)
app.command("export")(project.export)
app.add_typer(project.kb_app, name="kb")
app.command("check")(run.check)
app.command("demo")(run.demo)
app.add_typer(heldout_app, name="heldout")
app.command("eval")(eval_command)
app.command("trainers")(trainers_command)
app.command("doctor")(doctor_command)


def _exception_types(name: str) -> tuple[type[BaseException], ...]:
    """Exception class `name` of every click that may raise it: typer's bundled one (`typer._click`, newer
    typers) and the standalone package (older typers, or plug-ins importing click)."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_CLICK_ERRORS = _exception_types("ClickException")
_NO_ARGS = _exception_types("NoArgsIsHelpError")
_ABORTS = (typer.Abort, *_exception_types("Abort"))


def one_line(text: str) -> str:
    """`text` on one line: control characters (a name's newline, an escape code) shown escaped, never obeyed."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _fail(message: str) -> NoReturn:
    err.print(f"error: {one_line(message)}", highlight=False, soft_wrap=True)
    sys.exit(1)


def _usage_message(exc: BaseException) -> str:
    """Click's message for a usage error, with the command whose --help explains it."""
    message = (exc.format_message() if hasattr(exc, "format_message") else str(exc)).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", "") if ctx is not None else ""
    return f"{message} (see `{command} --help`)" if command else message


def main(argv: Sequence[str] | None = None) -> None:
    """The `datagen` entry point: whatever the user got wrong is `error: ...` on one line and exit code 1."""
    run.refresh()
    eval_refresh()
    try:
        # Non-standalone click returns the code of a typer.Exit instead of raising it.
        code = app(args=list(argv) if argv is not None else None, prog_name="datagen", standalone_mode=False)
    except DatagenError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(validation_message(exc))
    except (*_ABORTS, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except _NO_ARGS as exc:  # `datagen` or `datagen genes` alone: the help is what was asked for
        out.print(exc.format_message(), soft_wrap=True)  # type: ignore[attr-defined]
        sys.exit(0)
    except _CLICK_ERRORS as exc:
        _fail(_usage_message(exc))
    except OSError as exc:  # the environment refused (disk full, permissions): the user's to fix, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
