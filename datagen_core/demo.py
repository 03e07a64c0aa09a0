"""The shipped demo project: real SMS spam seeds and hand-written genes, ready to evolve offline."""

from __future__ import annotations

from pathlib import Path

from datagen_core.config import Gene, Label, ProjectSpec
from datagen_core.ingest import read_examples
from datagen_core.store import Store, project_path

DEMO_PROJECT = "sms-spam-demo"
DEMO_GENES = (
    Gene(name="length", description="number of words"),
    Gene(name="tone", description="casual, urgent, friendly, formal"),
    Gene(name="subtopic", description="what the message is about"),
    Gene(name="writing style", description="abbreviations, punctuation, capitalisation"),
)
DEMO_LABELS = (
    Label(name="ham", description="an ordinary personal message between people who know each other"),
    Label(name="spam", description="an unsolicited commercial or fraudulent message"),
)


def demo_seeds_path() -> Path:
    return Path(__file__).parent / "demo_data" / "sms_spam_seeds.csv"


def demo_heldout_path() -> Path:
    return Path(__file__).parent / "demo_data" / "sms_spam_heldout.csv"


def ensure_demo_project(home: Path) -> Path:
    """Create the demo project in `home` unless it exists; returns its file."""
    path = project_path(home, DEMO_PROJECT)
    if path.exists():
        return path
    spec = ProjectSpec(name=DEMO_PROJECT, task="SMS spam detection", text_kind="SMS message")
    examples, heldout = read_examples(demo_seeds_path()), read_examples(demo_heldout_path())
    with Store.create(path, spec, DEMO_LABELS, examples, "demo: SMS Spam Collection (CC BY 4.0)",
                      heldout=heldout) as store:
        store.add_gene_set(DEMO_GENES, "demo", note="shipped with the demo")
    return path
