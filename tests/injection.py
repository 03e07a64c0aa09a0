"""A project whose every user- and model-supplied string tries to make the page that shows it fetch from `base`.

Label names, label descriptions, the task, the text kind, genes and their descriptions, constraints, the real
examples, the offspring and the run's model name each carry a markdown image, an HTML `<img>` or a link to
`base` (a counting server on 127.0.0.1), and every text starts like a spreadsheet formula. A page that draws
one of them as markdown or HTML makes a request there; a page that shows them as text makes none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec, RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.store import Store, project_path

from .loopback_server import WORDS, LoopbackServer

PROJECT = "injection"


@dataclass(frozen=True)
class Hostile:
    """The strings, each pointing at `base` (e.g. http://127.0.0.1:8123)."""

    base: str

    @property
    def image_label(self) -> str:
        return f"![x]({self.base}/label.png)"

    @property
    def html_label(self) -> str:
        return f"<img src={self.base}/img.png>"

    @property
    def task(self) -> str:
        return f"spam detection ![t]({self.base}/task.png)"

    @property
    def text_kind(self) -> str:
        return f"message <img src={self.base}/kind.png>"

    @property
    def description(self) -> str:
        return f"[more]({self.base}/description) <script src={self.base}/description.js></script> :material/home:"

    @property
    def gene(self) -> str:
        return f"![g]({self.base}/gene.png)"

    @property
    def gene_description(self) -> str:
        return f"<img src={self.base}/gene-description.png>"

    @property
    def constraint(self) -> str:
        return f"no pictures like ![c]({self.base}/constraint.png)"

    @property
    def model(self) -> str:
        return f"![m]({self.base}/model.png)"

    @property
    def formula(self) -> str:
        return f'=HYPERLINK("{self.base}/formula","click")'

    def answer(self, body: dict[str, Any]) -> str:
        """An offspring: a formula first, then an image and an `<img>`, then enough words drawn from the prompt's
        hash that the run does not take it for a copy of its instruction (which holds the same URLs)."""
        digest = hashlib.sha256((body["messages"][-1]["content"] + str(body.get("seed"))).encode()).digest()
        words = " ".join(WORDS[byte % len(WORDS)] for byte in digest)
        return f"{self.formula} ![o]({self.base}/offspring.png) <img src={self.base}/offspring-img.png> {words}"


def make_injection_project(home: Path, hostile: Hostile, embedder: Embedder, per_label: int = 2) -> None:
    """Create the project, its gene set and one completed run (offspring from a loopback model named
    `hostile.model`), and close the file so another process (the studio) can open it."""
    labels = [Label(name=hostile.image_label, description=hostile.description), Label(name=hostile.html_label)]
    examples = pd.DataFrame({
        "text": [f"{hostile.formula} first example about a prize", "a second example about a free prize",
                 "a third example about the cash prize", f"{hostile.formula} see you at lunch tomorrow",
                 "running late for the train again", "dinner at home with mum tonight"],
        "label": [labels[0].name] * 3 + [labels[1].name] * 3,
    })
    spec = ProjectSpec(name=PROJECT, task=hostile.task, text_kind=hostile.text_kind)
    with Store.create(project_path(home, PROJECT), spec, labels, examples, "injection.csv") as store:
        store.add_gene_set([Gene(name=hostile.gene, description=hostile.gene_description),
                            Gene(name="tone", description="casual or urgent"),
                            Gene(name="length", description="number of words")],
                           "user", note=f"note {hostile.gene}", constraints=[hostile.constraint])
        with LoopbackServer(answer=hostile.answer) as server:
            config = LLMConfig(backend="openai", base_url=server.base_url, model=hostile.model, max_in_flight=1)
            run_id = start_run(store, RunConfig(per_label=per_label, seed=7, sampling=SamplingParams(max_tokens=64)),
                               config)
            summary = run_generation(store, config, run_id, embedder=embedder)
        assert summary.status == "completed", summary
        assert sum(kept for kept, _ in store.label_counts(run_id).values()) == 2 * per_label
