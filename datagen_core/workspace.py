"""A process-wide view of the project folder for long-lived interfaces (the studio).

DuckDB lets one process hold a project file and one connection serve many threads through cursors, so
every browser session of the studio shares one `Store` per project, one embedder, one `RunManager` and one
evaluation job per project.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from datagen_core.config import Label, ProjectSpec
from datagen_core.demo import DEMO_PROJECT, ensure_demo_project
from datagen_core.embed import Embedder
from datagen_core.engine.jobs import RunManager
from datagen_core.errors import DatagenError
from datagen_core.evaluation.jobs import EvaluationJobs
from datagen_core.ingest import check_project_name
from datagen_core.store import Store, project_path


class Workspace:
    """Project files in `home`, each opened once for the life of the process."""

    def __init__(self, home: Path, embedder: Embedder | None = None) -> None:
        self.home = home
        self.embedder = embedder or Embedder()
        self.embedder.warm_up()  # the studio's first run, map or metric then finds it loaded
        self.runs = RunManager(self.embedder)
        self.evaluations = EvaluationJobs(self.embedder)
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    def projects(self) -> list[str]:
        """The complete projects: a file being created (or left by a killed creation) is hidden until renamed."""
        return sorted(p.stem for p in self.home.glob("*.duckdb")) if self.home.is_dir() else []

    def store(self, name: str) -> Store:
        """The open store of project `name` (opened on first use)."""
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                store = Store.open(project_path(self.home, name))
                self._stores[name] = store
            return store

    def create_project(
        self,
        spec: ProjectSpec,
        labels: Sequence[Label],
        examples: pd.DataFrame,
        source: str | None,
        heldout: pd.DataFrame | None = None,
    ) -> Store:
        """Create project `spec.name` and keep it open; the file appears complete or not at all (`Store.create`)."""
        check_project_name(spec.name)
        with self._lock:
            if spec.name in self._stores or project_path(self.home, spec.name).exists():
                raise DatagenError(f"project {spec.name!r} already exists; open it or pick another name")
            store = Store.create(project_path(self.home, spec.name), spec, labels, examples, source, heldout=heldout)
            self._stores[spec.name] = store
            return store

    def ensure_demo(self) -> str:
        """Create the shipped demo project unless it exists; returns its name."""
        with self._lock:
            if DEMO_PROJECT not in self._stores:
                ensure_demo_project(self.home)
        return DEMO_PROJECT

    def close(self) -> None:
        self.runs.shutdown()
        self.evaluations.shutdown()
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
