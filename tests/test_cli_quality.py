"""The quality CLI as a user drives it: load a knowledge base, run modules, bad options as one clear line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .conftest import make_project, shared_csv
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
