"""End to end on the real embedded model (SmolLM2-135M in llama.cpp) and the real embedder."""

from __future__ import annotations

from pathlib import Path

from datagen_core.config import LLMConfig, RunConfig
from datagen_core.demo import DEMO_PROJECT, ensure_demo_project
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.store import Store


def test_demo_project_evolves_on_the_embedded_model(home: Path, embedder: Embedder) -> None:
    path = ensure_demo_project(home)
    assert path.name == f"{DEMO_PROJECT}.duckdb"
    llm_config = LLMConfig.from_env()
    assert llm_config.backend == "embedded"
    with Store.open(path) as store:
        config = RunConfig(per_label=2, seed=11, sampling=llm_config.default_sampling(), worked_example=True)
        run_id = start_run(store, config, llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed"
        assert store.kept_counts(run_id) == {"ham": 2, "spam": 2}
        rows = store.samples(run_id=run_id)
        assert (rows["model"] == "SmolLM2-135M-Instruct").all()
        assert all(len(t.split()) >= 2 for t in rows["text"])
        usage = store.run_usage(run_id)
        assert usage["completion_tokens"] > 0 and usage["failed_calls"] == 0
