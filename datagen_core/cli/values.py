"""`datagen genes`, `topics` and `attributes`: the versioned inputs of the methods, shown, proposed and edited."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.text import Text

from datagen_core.cli.options import DEFAULT_HOME, BaseUrl, Home, Model, llm_config, open_project, out, split_list
from datagen_core.config import Gene
from datagen_core.errors import DatagenError
from datagen_core.store import Store

genes_app = typer.Typer(no_args_is_help=True, help="Show, propose, edit and restore a project's genes (versioned).")
topics_app = typer.Typer(no_args_is_help=True, help="Topics per label for `run --method topic` (versioned).")
attributes_app = typer.Typer(no_args_is_help=True,
                             help="Values per attribute (gene) for `run --method attrprompt` (versioned).")


def _parse_gene(text: str) -> Gene:
    name, _, description = text.partition(":")
    try:
        return Gene(name=name, description=description.strip())
    except ValidationError as exc:
        raise DatagenError(f"gene {text!r}: {exc.errors()[0]['msg']}") from None


def _print_gene_lines(genes: Sequence[Gene]) -> None:
    for gene in genes:
        out.print(f"  - {gene.name}: {gene.description}" if gene.description else f"  - {gene.name}", soft_wrap=True)


def _print_genes(store: Store, all_versions: bool) -> None:
    sets = store.gene_sets()
    if not sets:
        out.print("no genes yet: `datagen genes propose`, `datagen genes use` (the library) or `datagen genes set`")
        return
    for gene_set in sets if all_versions else sets[-1:]:
        out.print(Text.assemble((f"version {gene_set.version}", "bold"), f" ({gene_set.source}) {gene_set.note}"),
                  soft_wrap=True)
        _print_gene_lines(gene_set.genes)
        for constraint in gene_set.constraints:
            out.print(f"  constraint: {constraint}", soft_wrap=True)


@genes_app.command("list")
def genes_list(
    name: str, all_versions: Annotated[bool, typer.Option("--all")] = False, home: Home = DEFAULT_HOME
) -> None:
    """Show the current genes (or every version with --all)."""
    with open_project(home, name) as store:
        _print_genes(store, all_versions)


@genes_app.command("propose")
def genes_propose(
    name: str,
    count: Annotated[int, typer.Option(min=2, max=6, help="How many genes to ask for (exactly).")] = 4,
    accept: Annotated[bool, typer.Option("--accept", help="Save the proposal as a new version.")] = False,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ask the LLM which genes matter for the task; shows a draft, saved only with --accept."""
    from datagen_core.proposals.genes import accept_genes, propose_genes

    with open_project(home, name) as store:
        config = llm_config(base_url, model)
        genes = propose_genes(store, config, count)
        if accept:
            accept_genes(store, genes, "llm", note=f"proposed by {config.model}")
            _print_genes(store, False)
            return
    out.print(Text.assemble(("proposal", "bold"), f" by {config.model} ({len(genes)} genes)"), soft_wrap=True)
    _print_gene_lines(genes)
    out.print(f"not saved: review it, then `datagen genes propose {name} --accept` or `datagen genes set {name} ...`",
              soft_wrap=True)
    out.print("to save exactly these genes (--accept asks the model again):", soft_wrap=True)
    arguments = [f"{g.name}: {g.description}" if g.description else g.name for g in genes]
    out.print("  " + shlex.join(["datagen", "genes", "set", name, *arguments]), soft_wrap=True)


@genes_app.command("restore")
def genes_restore(name: str, version: Annotated[int, typer.Argument(min=1)], home: Home = DEFAULT_HOME) -> None:
    """Save an earlier version's genes and constraints again as the newest version."""
    from datagen_core.proposals.genes import restore_gene_set

    with open_project(home, name) as store:
        restore_gene_set(store, version)
        _print_genes(store, False)


@genes_app.command("library")
def genes_library(kind: Annotated[str | None, typer.Argument(help="One task kind; all when omitted.")] = None) -> None:
    """List the gene sets that need no LLM, per task kind (`datagen genes use NAME KIND` saves one)."""
    from datagen_core.proposals.gene_library import LIBRARY, LIBRARY_VERSION, library_set

    sets = [library_set(kind)] if kind else list(LIBRARY.values())
    out.print(f"gene library v{LIBRARY_VERSION}: `datagen genes use NAME KIND` saves a set as a new version")
    for chosen in sets:
        out.print(Text.assemble((chosen.kind, "bold"), f" · {chosen.title} · {chosen.source}"), soft_wrap=True)
        _print_gene_lines(chosen.genes)


@genes_app.command("use")
def genes_use(
    name: str, kind: Annotated[str, typer.Argument(help="A task kind of `datagen genes library`.")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace the genes with the library's set for a task kind (a new version; no LLM needed)."""
    from datagen_core.proposals.gene_library import use_library_set

    with open_project(home, name) as store:
        use_library_set(store, kind)
        _print_genes(store, False)


def _edit_genes(home: Path, name: str, genes: list[Gene], note: str) -> None:
    with open_project(home, name) as store:
        current = store.gene_set()
        store.add_gene_set(genes, "user", note=note, constraints=current.constraints if current else ())
        _print_genes(store, False)


def _current_genes(home: Path, name: str) -> list[Gene]:
    with open_project(home, name) as store:
        current = store.gene_set()
    return list(current.genes) if current else []


@genes_app.command("set")
def genes_set(
    name: str,
    genes: Annotated[list[str], typer.Argument(help="'name' or 'name: description', one per argument.")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace the genes with the given list (a new version)."""
    _edit_genes(home, name, [_parse_gene(g) for g in genes], "set by the user")


@genes_app.command("add")
def genes_add(name: str, genes: list[str], home: Home = DEFAULT_HOME) -> None:
    """Add genes to the current set (a new version)."""
    _edit_genes(home, name, _current_genes(home, name) + [_parse_gene(g) for g in genes], f"added {genes}")


@genes_app.command("remove")
def genes_remove(name: str, genes: list[str], home: Home = DEFAULT_HOME) -> None:
    """Remove genes by name from the current set (a new version)."""
    current = _current_genes(home, name)
    wanted = {g.lower() for g in genes}
    missing = wanted - {g.name.lower() for g in current}
    if missing:
        raise DatagenError(f"no gene(s) {sorted(missing)} in the current set {[g.name for g in current]}")
    _edit_genes(home, name, [g for g in current if g.name.lower() not in wanted], f"removed {genes}")


def _print_values(store: Store, kind: str, all_versions: bool) -> None:
    sets = store.value_sets(kind)
    if not sets:
        out.print(f"no {kind} yet: `datagen {kind} propose` or `datagen {kind} set`")
        return
    for value_set in sets if all_versions else sets[-1:]:
        out.print(Text.assemble((f"version {value_set.version}", "bold"), f" ({value_set.source}) {value_set.note}"),
                  highlight=False, soft_wrap=True)
        for key, values in value_set.items.items():
            out.print(f"  - {key}: " + "; ".join(values), highlight=False, soft_wrap=True)


@topics_app.command("list")
def topics_list(
    name: str, all_versions: Annotated[bool, typer.Option("--all")] = False, home: Home = DEFAULT_HOME
) -> None:
    """Show the current topics per label (or every version with --all)."""
    with open_project(home, name) as store:
        _print_values(store, "topics", all_versions)


@topics_app.command("propose")
def topics_propose(
    name: str,
    count: Annotated[int, typer.Option(min=2, max=50, help="Real texts asked per label (distinct topics kept).")] = 10,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated subset; others are kept.")] = None,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ask the LLM the topic of up to COUNT real texts per label; the distinct answers are a new version."""
    from datagen_core.proposals.values import propose_topics, save_values

    with open_project(home, name) as store:
        topics = propose_topics(store, llm_config(base_url, model), count, split_list(labels))
        save_values(store, "topics", topics, "llm", note="proposed by the LLM")
        _print_values(store, "topics", False)


@topics_app.command("set")
def topics_set(
    name: str,
    label: Annotated[str, typer.Argument(help="The label whose topics to replace.")],
    topics: Annotated[list[str] | None, typer.Argument(help="Topics, one per argument; none removes them.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace one label's topics (a new version)."""
    from datagen_core.proposals.values import save_values

    with open_project(home, name) as store:
        known = [lb.name for lb in store.labels()]
        if label not in known:
            raise DatagenError(f"unknown label {label!r}; labels are {known}")
        save_values(store, "topics", {label: topics or []}, "user", note=f"set {label}")
        _print_values(store, "topics", False)


@attributes_app.command("list")
def attributes_list(
    name: str, all_versions: Annotated[bool, typer.Option("--all")] = False, home: Home = DEFAULT_HOME
) -> None:
    """Show the current values per attribute (or every version with --all)."""
    with open_project(home, name) as store:
        _print_values(store, "attributes", all_versions)


@attributes_app.command("propose")
def attributes_propose(
    name: str,
    count: Annotated[int, typer.Option(min=2, max=30, help="Real texts asked per attribute.")] = 6,
    attributes: Annotated[str | None, typer.Option("--attributes", help="Comma-separated genes; others kept.")] = None,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ask the LLM each gene's value in up to COUNT real texts; the distinct answers are a new version."""
    from datagen_core.proposals.values import propose_attribute_values, save_values

    with open_project(home, name) as store:
        values = propose_attribute_values(store, llm_config(base_url, model), count, split_list(attributes))
        gene_set = store.gene_set()
        save_values(store, "attributes", values, "llm", note="proposed by the LLM",
                    gene_set_version=gene_set.version if gene_set else None)
        _print_values(store, "attributes", False)


@attributes_app.command("set")
def attributes_set(
    name: str,
    attribute: Annotated[str, typer.Argument(help="The attribute (usually a gene) whose values to replace.")],
    values: Annotated[list[str] | None, typer.Argument(help="Values, one per argument; none removes it.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace one attribute's values, or add a new attribute (a new version)."""
    from datagen_core.proposals.values import save_values

    with open_project(home, name) as store:
        current = store.value_set("attributes")
        # keep the stored spelling of an attribute named in another case, so it is replaced, not doubled
        key = next((k for k in (current.items if current else {}) if k.lower() == attribute.strip().lower()),
                   " ".join(attribute.split()))
        if not key:
            raise DatagenError("the attribute name is empty")
        save_values(store, "attributes", {key: values or []}, "user", note=f"set {key}")
        _print_values(store, "attributes", False)

