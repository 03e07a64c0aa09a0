"""What an export or a card hands to someone else is safe to open: CSV cells no spreadsheet runs as formulas,
a dataset card that draws user strings as text, and no credential written into an endpoint's URL anywhere."""

from __future__ import annotations

import csv
import io
import re
from html import escape
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec, RunConfig, SamplingParams, redact_url
from datagen_core.engine.runs import start_run
from datagen_core.export import CSV_NOTE, dataset_card, export_bytes, export_frame
from datagen_core.llm.openai_backend import OpenAIBackend
from datagen_core.records import NewSample, utcnow
from datagen_core.store import Store, project_path

from .test_cli import run_cli

FORMULAS = ['=HYPERLINK("http://evil.example/x","click")', "+1+2", "-2+3", "@SUM(A1:A2)", "\tstarts with a tab",
            "\r=carriage return"]
PLAIN = ["what a lovely day", "a - b is not a formula in the middle", "50% off = never"]
IMAGE = "![x](http://127.0.0.1:9/label.png)"
HOSTILE = {
    "label": f"spam {IMAGE}",
    "description": "<img src=http://127.0.0.1:9/d.png onerror=alert(1)>",
    "task": "spam <script>alert(1)</script> [link](http://127.0.0.1:9/t)",
    "gene": "tone <img src=x>",
    "constraint": "no `code` and no ![i](http://127.0.0.1:9/c.png)",
}


def hostile_project(home: Path) -> Store:
    seeds = pd.DataFrame({"text": [f"ham number {i} here" for i in range(4)] + [f"spam number {i} here" for i in
                                                                                range(4)],
                          "label": ["ham"] * 4 + [HOSTILE["label"]] * 4})
    spec = ProjectSpec(name="hostile", task=HOSTILE["task"], text_kind="SMS | message")
    labels = [Label(name="ham", description=""), Label(name=HOSTILE["label"], description=HOSTILE["description"])]
    store = Store.create(project_path(home, "hostile"), spec, labels, seeds, None)
    store.add_gene_set([Gene(name=HOSTILE["gene"], description="# heading?"), Gene(name="length")], "user",
                       constraints=[HOSTILE["constraint"]])
    return store


def write_texts(store: Store, texts: list[str], label: str) -> None:
    ids = store.allocate_sample_ids(len(texts))
    store.write_offspring([
        NewSample(id=i, run_id="r1", label=label, text=text, method="test", parent_ids=(), gene_split=None,
                  prompt="=prompt", model="m", sampling={"temperature": 1.0}, raw_response=text, llm_call_id="c",
                  prompt_tokens=0, completion_tokens=0, requested_at=utcnow())
        for i, text in zip(ids, texts, strict=True)], [], {}, "none")


def test_csv_neutralises_formulas_and_jsonl_parquet_stay_exact(home: Path) -> None:
    with hostile_project(home) as store:
        write_texts(store, FORMULAS + PLAIN, "ham")
        frame = export_frame(store)
    rows = list(csv.DictReader(io.StringIO(export_bytes(frame, "csv").decode("utf-8"), newline="")))
    texts = {row["text"] for row in rows}
    assert texts == {"'" + text for text in FORMULAS} | set(PLAIN)
    assert {row["prompt"] for row in rows} == {"'=prompt"}  # every text column, not only `text`
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values() if cell)
    jsonl = pd.read_json(io.BytesIO(export_bytes(frame, "jsonl")), lines=True)
    parquet = pd.read_parquet(io.BytesIO(export_bytes(frame, "parquet")))
    for back in (jsonl, parquet):
        assert set(back["text"]) == set(FORMULAS + PLAIN)


def test_dataset_card_draws_user_strings_as_text(home: Path) -> None:
    with hostile_project(home) as store:
        write_texts(store, ["a perfectly normal text"], HOSTILE["label"])
        run_id = start_run(store, RunConfig(per_label=1, seed=0, sampling=SamplingParams()),
                           LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m <img src=x>"))
        card = dataset_card(store, export_frame(store), run_id)
    assert CSV_NOTE in card
    html = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "linkify"]).render(card)
    for tag in ("<img", "<script", "<a ", "<h1>heading", "<code>code"):
        assert tag not in html, (tag, html)
    shown = re.sub(r"</?code>", "", html)  # URLs sit in code spans, where no renderer links them
    for value in HOSTILE.values():  # each shows as written (HTML-escaped)
        assert escape(value, quote=False) in shown, value
    assert "| SMS \\| message" not in card and "SMS \\| message" in card


@pytest.mark.parametrize(("url", "shown"), [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("https://user:sekrit@api.example.com/v1", "https://user:***@api.example.com/v1"),
    ("https://sk-sekrit@api.example.com/v1", "https://***@api.example.com/v1"),
    ("https://api.example.com/v1?api_key=sekrit&region=eu", "https://api.example.com/v1?api_key=***&region=eu"),
    ("https://api.example.com/v1?Token=sekrit&sig=sekrit", "https://api.example.com/v1?Token=***&sig=***"),
    ("api.example.com:8000/v1?key=sekrit", "api.example.com:8000/v1?key=***"),
])
def test_urls_lose_their_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_key_in_the_base_url_is_stored_and_shown_nowhere(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://tok:sekrit1@127.0.0.1:9/v1?api_key=sekrit2"
    config = LLMConfig(backend="openai", base_url=url, model="m")
    assert config.base_url == url  # requests still go to the URL as given
    with hostile_project(home) as store:
        run_id = start_run(store, RunConfig(per_label=1, seed=0, sampling=SamplingParams()), config)
        assert store.run(run_id).llm["base_url"] == "http://tok:***@127.0.0.1:9/v1?api_key=***"
        write_texts(store, ["a perfectly normal text"], "ham")
        card = dataset_card(store, export_frame(store), run_id)
        events = store.events(run_id).to_json()
    assert "sekrit" not in card + events
    assert b"sekrit" not in project_path(home, "hostile").read_bytes()
    backend = OpenAIBackend(config)
    assert "sekrit" not in backend.where and backend.base_url == url
    # resuming cannot use the redacted URL: one line that says what to give
    code, _, err = run_cli(capsys, home, "run", "hostile", "--resume")
    assert code == 1 and err.count("\n") == 1 and "give --base-url" in err and "sekrit" not in err
