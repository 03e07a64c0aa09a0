"""The quality CLI as a user drives it: load a knowledge base, run modules, bad options as one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from datagen_core.config import CheckSpec
from datagen_core.store import Store

from .conftest import make_project, shared_csv
from .loopback_server import LoopbackServer, deterministic_text
from .test_cli import run_cli


def test_kb_load_counts_and_skips_what_is_there(tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    docs = tmp_path / "wiki.csv"
    pd.read_csv(shared_csv("wiki_paragraphs.csv")).head(12).to_csv(docs, index=False)
    code, out, err = run_cli(capsys, home, "kb", "load", "trec", "--data", str(docs))
    assert code == 0, err
    assert "added 12 passages; the knowledge base holds 12" in out
    code, out, _ = run_cli(capsys, home, "kb", "load", "trec", "--data", str(docs))
    assert "added 0 passages; the knowledge base holds 12" in out
    code, _, err = run_cli(capsys, home, "kb", "load", "trec", "--data", str(tmp_path / "missing.csv"))
    assert code == 1 and err.count("\n") == 1


def test_check_options_are_validated(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    code, _, err = run_cli(capsys, home, "check", "trec", "--check", "spellcheck")
    assert code == 1 and "--check must be one of" in err and "facts" in err
    code, _, err = run_cli(capsys, home, "check", "trec", "--check", "math", "--mode", "overwrite")
    assert code == 1 and "--mode must be 'flag' or 'correct'" in err
    code, out, err = run_cli(capsys, home, "check", "trec", "--check", "dedup")
    assert code == 0 and "checked 0" in out  # no synthetic samples yet: nothing to do, nothing broken


def test_run_applies_in_run_checks_and_stores_them_with_the_run(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)

    def answer(body: dict[str, Any]) -> str:
        if "Item: " in body["messages"][-1]["content"]:
            return json.dumps({"reflection": "fine", "is_good": True})
        return deterministic_text(body["messages"], body.get("seed"))

    with LoopbackServer(answer=answer) as server:
        endpoint = ["--base-url", server.base_url, "--model", "loopback"]
        code, out, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--labels", "HUM", "--check",
                                 "reflection", "--rounds", "2", "--check", "math", "--mode", "correct", *endpoint)
        assert code == 0, err
        out = " ".join(out.split())  # rich wraps long lines
        assert "seed" in out and "checks reflection, math" in out and "2 new offspring" in out
    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        assert run.config.checks == (CheckSpec(name="reflection", rounds=2, mode="correct"),
                                     CheckSpec(name="math", rounds=2, mode="correct"))
        for sample_id in store.samples(run_id=run.id)["id"]:
            recorded = store.sample_checks(int(sample_id))
            assert list(recorded["check"]) == ["reflection", "math"]  # in the order given
            assert json.loads(recorded["options"][0]) == {"rounds": 2}
            assert recorded["reason"][1] == "math_no_number"  # a question class has no number to check


def test_run_check_options_are_validated(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    endpoint = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--check", "debias", *endpoint)
    assert code == 1 and "the debias check cannot run in-run" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--check", "dedup", *endpoint)
    assert code == 1 and "--dedup" in err
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--check", "reflection", "--check",
                           "reflection", *endpoint)
    assert code == 1 and "each check may be given once" in err
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--check", "math", "--mode", "fix",
                           *endpoint)
    assert code == 1 and "--mode must be 'flag' or 'correct'" in err
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--check", "facts", *endpoint)
    assert code == 1 and "needs a knowledge base" in err
    code, _, err = run_cli(capsys, home, "run", "trec", "--resume", "--check", "reflection", *endpoint)
    assert code == 1 and "no unfinished run" in err
    with Store.open(home / "trec.duckdb") as store:
        assert store.runs() == []
