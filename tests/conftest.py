"""Shared fixtures: a loopback OpenAI-compatible server, project homes and small real seed sets."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec
from datagen_core.embed import Embedder
from datagen_core.store import Store, project_path

from .loopback_server import LoopbackServer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DATAGEN_EMBEDDED_IDLE", "60")  # the model server the tests started stops soon after them
# The tests' own runtime directory: their model server and self-check reports are not the machine's (a studio the
# user runs keeps its own); the studio subprocesses of the browser tests inherit it and share the tests' server.
os.environ.setdefault("DATAGEN_RUNTIME_DIR", tempfile.mkdtemp(prefix="datagen-runtime-"))


def shared_csv(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/data must sit beside the repository)")
    return path


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "projects"


def loopback_config(server: LoopbackServer, **kwargs: object) -> LLMConfig:
    return LLMConfig(backend="openai", base_url=server.base_url, model="loopback", **kwargs)  # type: ignore[arg-type]


def trec_seeds(per_label: int = 6, labels: tuple[str, ...] = ("HUM", "LOC", "NUM")) -> pd.DataFrame:
    frame = pd.read_csv(shared_csv("trec_coarse.csv"), dtype=str)
    frame = frame[frame["label"].isin(labels)]
    return frame.groupby("label", sort=False).head(per_label).reset_index(drop=True)


def make_project(home: Path, name: str = "trec", per_label: int = 6, genes: bool = True) -> Path:
    seeds = trec_seeds(per_label)
    labels = [Label(name=n, description=f"a question whose answer is of type {n}") for n in seeds["label"].unique()]
    path = project_path(home, name)
    spec = ProjectSpec(name=name, task="question type classification", text_kind="question")
    with Store.create(path, spec, labels, seeds, "trec_coarse.csv") as store:
        if genes:
            store.add_gene_set([Gene(name="length"), Gene(name="subtopic"), Gene(name="style"),
                                Gene(name="wh-word")], "user")
    return path
