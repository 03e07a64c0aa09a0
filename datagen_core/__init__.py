"""Genetic Prompt Studio's engine as a library: open a project, build and run a generation, check, evaluate, export.

    from pathlib import Path
    import datagen_core as dg

    llm = dg.LLMConfig.from_env()  # the embedded model unless DATAGEN_BASE_URL / DATAGEN_MODEL are set
    with dg.Store.open(dg.ensure_demo_project(Path("projects"))) as store:
        config = dg.build_run_config(llm, per_label=5, method="genetic")
        summary = dg.run_generation(store, llm, dg.start_run(store, config, llm))
        print(dg.Evaluator(store).metrics(summary.run_id).result)
        dg.write_export(dg.export_frame(store, run_id=summary.run_id), Path("spam.jsonl"), "jsonl")

Names are loaded on first use, so importing one module of the package (the model server's supervisor, say)
never pulls in the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LLMConfig": "datagen_core.config",
    "ProjectSpec": "datagen_core.config",
    "Label": "datagen_core.config",
    "Gene": "datagen_core.config",
    "RunConfig": "datagen_core.config",
    "DatagenError": "datagen_core.errors",
    "Store": "datagen_core.store",
    "SampleFilter": "datagen_core.store",
    "project_path": "datagen_core.store",
    "read_examples": "datagen_core.ingest",
    "ensure_demo_project": "datagen_core.demo",
    "METHODS": "datagen_core.registry",
    "CHECKS": "datagen_core.registry",
    "build_run_config": "datagen_core.engine.build",
    "start_run": "datagen_core.engine.runs",
    "run_generation": "datagen_core.engine.runner",
    "make_check": "datagen_core.checks",
    "apply_check": "datagen_core.checks.apply",
    "Embedder": "datagen_core.embed",
    "Evaluator": "datagen_core.evaluation.evaluator",
    "export_frame": "datagen_core.export",
    "write_export": "datagen_core.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'datagen_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
