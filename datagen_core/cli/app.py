"""`datagen`: the command line over the engine. Every user error is one line on stderr and exit code 1.

One module per command group (`project`, `values`, `run`, `eval`, `doctor`); this one assembles them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from datagen_core.cli import project, run, values
from datagen_core.cli.doctor import doctor_command
from datagen_core.cli.eval import eval_command, heldout_app
from datagen_core.cli.options import err
from datagen_core.errors import DatagenError

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
app.command("doctor")(doctor_command)


def main(argv: Sequence[str] | None = None) -> None:
    run.refresh()
    try:
        # Non-standalone click returns the code of a typer.Exit instead of raising it.
        code = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except DatagenError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
