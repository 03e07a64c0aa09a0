"""The CLI as a user drives it: the happy path, and every kind of bad input as one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from datagen_core.cli.app import main
from datagen_core.config import LLMConfig, RunConfig, SamplingParams
from datagen_core.engine.runs import start_run
from datagen_core.store import Store

from .conftest import make_project, shared_csv
from .loopback_server import LoopbackServer


def run_cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main([*args, "--home", str(home)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_genes_run_export(tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "seeds.jsonl"
    frame = pd.read_csv(shared_csv("sms_spam.csv")).groupby("label").head(8)
    frame.rename(columns={"text": "message", "label": "category"}).to_json(data, orient="records", lines=True)
    code, out, err = run_cli(capsys, home, "init", "sms", "--data", str(data), "--text-col", "message",
                             "--label-col", "category", "--task", "spam detection", "--kind", "SMS message",
                             "--label-desc", "spam=an unsolicited commercial message")
    assert code == 0, err
    assert "16 examples" in out
    with LoopbackServer() as server:
        endpoint = ["--base-url", server.base_url, "--model", "loopback"]
        code, out, err = run_cli(capsys, home, "genes", "propose", "sms", "--accept", *endpoint)
        assert code == 0, err
        assert "tone" in out
        assert run_cli(capsys, home, "genes", "remove", "sms", "tone")[0] == 0
        assert run_cli(capsys, home, "genes", "add", "sms", "audience: who it is for")[0] == 0
        code, out, _ = run_cli(capsys, home, "genes", "list", "sms", "--all")
        assert "version 3" in out and "audience" in out
        code, out, err = run_cli(capsys, home, "run", "sms", "--per-label", "4", *endpoint)
        assert code == 0, err
        assert "8 new offspring" in out
    with Store.open(home / "sms.duckdb") as store:
        (run,) = store.runs()
        assert run.gene_set_version == 3
        assert "an unsolicited commercial message" in store.samples(run_id=run.id, ).query("label == 'spam'")[
            "prompt"].iloc[0]
    for fmt in ("jsonl", "csv", "parquet"):
        target = tmp_path / f"out.{fmt}"
        code, out, err = run_cli(capsys, home, "export", "sms", "--format", fmt, "--out", str(target))
        assert code == 0, err
        assert "wrote 8 samples" in out
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(exported) == 8 and all(len(r["parent_ids"]) == 2 and r["gene_split"]["mutated"] for r in exported)
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 8
    assert set(pd.read_csv(tmp_path / "out.csv")["label"]) == {"ham", "spam"}


BAD_FILES = {
    "missing.csv": (None, "no such file"),
    "empty.csv": ("", "empty"),
    "header_only.csv": ("text,label\n", "no rows"),
    "wrong_cols.csv": ("body,cls\nhello,a\nbye,b\n", "missing column(s) 'text', 'label'"),
    "one_example.csv": ("text,label\na,x\nb,x\nc,y\n", "fewer than 2 examples"),
    "one_label.csv": ("text,label\na,x\nb,x\n", "only one label"),
    "latin1.csv": (b"text,label\ncaf\xe9,x\nna\xefve,x\nb,y\nc,y\n", "not UTF-8"),
    "broken.jsonl": ('{"text": "a", "label": \n', "cannot parse"),
    "seeds.xlsx": ("x", "unsupported file type"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_files_fail_with_one_line_and_leave_nothing(
    name: str, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, message = BAD_FILES[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, _, err = run_cli(capsys, home, "init", "p", "--data", str(path), "--task", "t")
    assert code == 1
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (home / "p.duckdb").exists()


def test_unknown_project_bad_names_and_unreachable_endpoint(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, home, "run", "nope", "--per-label", "2")
    assert code == 1 and "unknown project" in err
    code, _, err = run_cli(capsys, home, "init", "../evil", "--data", "x.csv", "--task", "t")
    assert code == 1 and "project name" in err
    make_project(home)
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--base-url",
                           "http://127.0.0.1:9/v1", "--model", "m")
    assert code == 1 and "cannot reach the LLM endpoint" in err and err.count("\n") == 1
    with Store.open(home / "trec.duckdb") as store:
        assert store.runs() == []  # refused before it was recorded
        start_run(store, RunConfig(per_label=2, seed=0, sampling=SamplingParams()),
                  LLMConfig.from_env("http://127.0.0.1:9/v1", "m"))
    code, _, err = run_cli(capsys, home, "run", "trec", "--resume")  # resumes with the recorded endpoint
    assert code == 1 and "cannot reach the LLM endpoint http://127.0.0.1:9/v1" in err
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--labels", "NOPE")
    assert code == 1 and "unknown label" in err
    make_project(home, "fresh")
    code, _, err = run_cli(capsys, home, "run", "fresh", "--resume")
    assert code == 1 and "no unfinished run" in err
    code, _, err = run_cli(capsys, home, "genes", "remove", "trec", "colour")
    assert code == 1 and "no gene(s)" in err


def test_invalid_api_key_is_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    with LoopbackServer(api_key="right") as server:
        code, _, err = run_cli(capsys, home, "genes", "propose", "trec", "--base-url", server.base_url,
                               "--model", "m")
    assert code == 1 and "refused the API key" in err and err.count("\n") == 1


def test_a_project_held_by_another_process_is_reported(home: Path) -> None:
    make_project(home)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True);"
         " time.sleep(30)", str(home / "trec.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        result = subprocess.run([sys.executable, "-m", "datagen_core.cli.app", "genes", "list", "trec", "--home",
                                 str(home)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "in use by another process" in result.stderr and result.stderr.count("\n") == 1
    finally:
        holder.kill()
        holder.wait()
