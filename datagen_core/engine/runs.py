"""A run's life in the store outside its loop: checked and recorded before it starts, topped up after review."""

from __future__ import annotations

import uuid

from datagen_core.config import LLMConfig, RunConfig
from datagen_core.errors import DatagenError
from datagen_core.methods import prepare_run_config
from datagen_core.registry import CHECKS, METHODS
from datagen_core.store import RunInfo, Store


def validate_run(store: Store, config: RunConfig) -> RunConfig:
    """The config a new run would record, or a DatagenError saying what the project lacks for it: checked before
    anything slower (an endpoint's connection check), so a user fixes their own mistakes first."""
    config = prepare_run_config(store, config)
    labels = [lb.name for lb in store.labels()]
    unknown = [lb for lb in config.labels if lb not in labels]
    if unknown:
        raise DatagenError(f"unknown label(s) {unknown}; the project's labels are {labels}")
    if METHODS.get(config.method).needs_genes and store.gene_set() is None:
        raise DatagenError("the project has no genes: start from the library (`datagen genes library`, then "
                           "`datagen genes use`), type them (`datagen genes set`) or accept a proposal "
                           "(`datagen genes propose --accept`)")
    for check in config.checks:
        CHECKS.get(check.name).require(store)
    return config


def start_run(store: Store, config: RunConfig, llm_config: LLMConfig) -> str:
    """Record a new run (the gene-set version and the topics or attribute values it uses included)."""
    config = validate_run(store, config)
    gene_set = store.gene_set()
    run_id = uuid.uuid4().hex[:12]
    store.create_run(run_id, config, gene_set.version if gene_set else None, llm_config)
    return run_id


def missing_offspring(store: Store, run: RunInfo) -> dict[str, int]:
    """Per label of a run, how many offspring its target lacks once the ones rejected in review no longer count."""
    counted = store.counted_offspring(run.id)
    labels = list(run.config.labels) or [lb.name for lb in store.labels()]
    missing = {label: run.config.per_label - counted.get(label, 0) for label in labels}
    return {label: n for label, n in missing.items() if n > 0}


def top_up_run(store: Store, run_id: str) -> dict[str, int]:
    """Prepare a run to ask again for exactly the offspring rejected in review (per label); the run's own loop
    then counts only what nobody rejected, and rejected offspring are no parents. Returns what is asked for."""
    run = store.run(run_id)
    if run.status == "stopped":
        raise DatagenError(f"run {run_id} was stopped for good; start a new run instead")
    missing = missing_offspring(store, run)
    if not missing:
        raise DatagenError(f"run {run_id} has all {run.config.per_label} offspring per label that nobody rejected: "
                           "nothing to top up")
    store.add_event(run_id, "info", "top_up", "asking again for " + ", ".join(
        f"{n} {label}" for label, n in missing.items()) + " rejected in review", {"missing": missing})
    return missing
