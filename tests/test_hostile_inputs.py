"""Hostile and malformed input: every one is one `error:` line on stderr, exit code 1, and the home untouched.

The corpus runs the CLI in-process (`main([...])`) for speed, a few through the real entry point; nothing here
reaches the embedded model (whatever would start generation fails before it). Below the corpus: what must hold
up while things succeed or get killed (user strings with rich markup, atomic `init`, progress on large files).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datagen_core.cli.app import main
from datagen_core.config import Label, ProjectSpec
from datagen_core.errors import DatagenError
from datagen_core.store import Store
from datagen_core.store.project import PARTIAL_MARK
from datagen_core.workspace import Workspace

from .conftest import make_project

ROOT = Path(__file__).resolve().parents[1]
GOOD_ROWS = ("text,label\nhello there my friend,a\nhow are you doing today,a\nbuy cheap pills now,b\n"
             "win a free prize,b\n")


def _parquet(columns: dict[str, pa.Array]) -> Callable[[Path], None]:
    return lambda path: pq.write_table(pa.table(columns), path)


def _jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


#: File name -> its bytes, or a function writing it. `{files}/NAME` in a case's arguments is this file.
FILES: dict[str, bytes | Callable[[Path], None]] = {
    "good.csv": GOOD_ROWS.encode(),
    "empty.csv": b"",
    "header_only.csv": b"text,label\n",
    "wrong_cols.csv": b"body,cls\nhello,a\nbye,b\n",
    "no_header.csv": b"hello there,a\nhow are you,a\nbuy now,b\nwin big,b\n",
    "one_column.csv": b"text\nhello\nbye\nagain\n",
    "one_example.csv": b"text,label\na b c,x\nd e f,x\ng h i,y\n",
    "one_label.csv": b"text,label\na b c,x\nd e f,x\n",
    "latin1.csv": b"text,label\ncaf\xe9 au lait,x\nna\xefve idea,x\nb c d,y\ne f g,y\n",
    "utf16.csv": GOOD_ROWS.encode("utf-16"),
    "garbage.csv": random.Random(0).randbytes(8192),
    "nul_bytes.csv": b"\x00" * 4096,
    "huge_line.csv": b"text,label\n" + b"x" * 5_000_000,
    "unterminated_quote.csv": b'text,label\n"hello there,a\nbye now,b\n',
    "ragged.csv": b"text,label\nhello,a,b,c\n",
    "blank_texts.csv": b"text,label\n   ,a\n\t,b\n,c\n",
    "duplicates_only.csv": b"text,label\nsame text,a\nsame text,a\nother,b\n",
    "tab_as_csv.tsv": GOOD_ROWS.encode(),
    "seeds.xlsx": b"PK\x03\x04 not a workbook",
    "seeds.txt": b"just some words\n",
    "broken.jsonl": b'{"text": "a", "label": \n',
    "arrays.jsonl": _jsonl(["[1, 2]", "[3, 4]"]),
    "scalar.json": b"3",
    "nested_text.jsonl": _jsonl([f'{{"text": {{"body": "t{i}"}}, "label": "{"ab"[i % 2]}"}}' for i in range(4)]),
    "null_labels.jsonl": _jsonl([f'{{"text": "text {i}", "label": null}}' for i in range(4)]),
    "bytes_text.parquet": _parquet({"text": pa.array([b"a b c", b"d e f", b"g h i", b"j k l"]),
                                    "label": pa.array(["x", "x", "y", "y"])}),
    "list_label.parquet": _parquet({"text": pa.array(["a b c", "d e f", "g h i", "j k l"]),
                                    "label": pa.array([["x"], ["x"], ["y"], ["y"]])}),
    "struct_text.parquet": _parquet({"text": pa.array([{"a": 1}] * 4), "label": pa.array(["x", "x", "y", "y"])}),
    "zero_rows.parquet": _parquet({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}),
    "garbage.parquet": b"this is not parquet at all",
    "unknown_labels.csv": b"text,label\nsome question,NOPE\nanother question,NOPE\nthird one,NADA\nlast one,NADA\n",
    "surplus_fields.csv": b"text,label\nhello, world,a\nhow, are you,a\nbuy, now,b\nwin, big,b\n",
}

INIT = ["init", "p", "--task", "t", "--data"]

#: (id, arguments). `{files}` is the folder of FILES, `{tmp}` a scratch folder outside the home, `{home}` the home
#: (also $DATAGEN_HOME, which holds the project `trec`).
CASES: list[tuple[str, list[str]]] = [
    # usage errors typer raises from its bundled click
    ("init-missing-data", ["init", "x"]),
    ("init-missing-task", ["init", "x", "--data", "{files}/good.csv"]),
    ("unknown-command", ["bogus"]),
    ("unknown-option", ["projects", "--bogus"]),
    ("option-missing-value", ["runs", "trec", "--home"]),
    ("run-per-label-0", ["run", "trec", "--per-label", "0"]),
    ("run-per-label-negative", ["run", "trec", "--per-label", "-3"]),
    ("run-per-label-text", ["run", "trec", "--per-label", "many"]),
    ("run-in-flight-0", ["run", "trec", "--per-label", "2", "--in-flight", "0"]),
    ("run-seed-text", ["run", "trec", "--per-label", "2", "--seed", "notanint"]),
    ("run-retries-99", ["run", "trec", "--per-label", "2", "--retries", "99"]),
    ("run-first-byte-timeout-0", ["run", "trec", "--per-label", "2", "--first-byte-timeout", "0"]),
    ("genes-propose-count-9", ["genes", "propose", "trec", "--count", "9"]),
    ("genes-propose-count-1", ["genes", "propose", "trec", "--count", "1"]),
    ("eval-bleu-sample-1", ["eval", "trec", "--bleu-sample", "1"]),
    ("demo-per-label-0", ["demo", "--per-label", "0"]),
    # init's own options
    ("holdout-text", [*INIT, "{files}/good.csv", "--holdout", "abc"]),
    ("holdout-0.95", [*INIT, "{files}/good.csv", "--holdout", "0.95"]),
    ("holdout-1", [*INIT, "{files}/good.csv", "--holdout", "1"]),
    ("holdout-negative", [*INIT, "{files}/good.csv", "--holdout", "-0.1"]),
    ("holdout-nan", [*INIT, "{files}/good.csv", "--holdout", "nan"]),
    ("init-seed-negative", [*INIT, "{files}/good.csv", "--seed", "-1"]),
    ("min-words-0", [*INIT, "{files}/good.csv", "--min-words", "0"]),
    ("task-empty", ["init", "p", "--task", "", "--data", "{files}/good.csv"]),
    ("task-blank", ["init", "p", "--task", "   ", "--data", "{files}/good.csv"]),
    ("label-desc-no-equals", [*INIT, "{files}/good.csv", "--label-desc", "noequals"]),
    ("label-desc-unknown-label", [*INIT, "{files}/good.csv", "--label-desc", "zzz=a description"]),
    ("text-col-missing", [*INIT, "{files}/good.csv", "--text-col", "body"]),
    ("text-col-is-label-col", [*INIT, "{files}/good.csv", "--text-col", "label"]),
    ("init-existing-project", ["init", "trec", "--task", "t", "--data", "{files}/good.csv"]),
    # project names
    ("name-trailing-newline", ["init", "p\n", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-trailing-slash", ["init", "p/", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-dotdot", ["init", "..", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-traversal", ["init", "../evil", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-empty", ["init", "", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-65-chars", ["init", "a" * 65, "--task", "t", "--data", "{files}/good.csv"]),
    ("name-escape-code", ["init", "p\x1b[31m", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-space", ["init", "my project", "--task", "t", "--data", "{files}/good.csv"]),
    ("name-nul-like-control", ["init", "p\x07", "--task", "t", "--data", "{files}/good.csv"]),
    ("open-name-newline", ["runs", "trec\n"]),
    ("open-unknown-project", ["labels", "list", "nope"]),
    # the home folder
    ("home-under-proc", [*INIT, "{files}/good.csv", "--home", "/proc/datagen-x"]),
    ("home-is-a-file", [*INIT, "{files}/good.csv", "--home", "{files}/good.csv"]),
    ("projects-home-is-a-file", ["projects", "--home", "{files}/good.csv"]),
    ("runs-home-is-a-file", ["runs", "trec", "--home", "{files}/good.csv"]),
    ("demo-home-under-proc", ["demo", "--home", "/proc/datagen-x"]),
    # files given to init
    *[(f"file-{name}", [*INIT, f"{{files}}/{name}"]) for name in FILES
      if name not in ("good.csv", "unknown_labels.csv")],
    ("file-missing", [*INIT, "{files}/missing.csv"]),
    ("file-is-a-directory", [*INIT, "{files}"]),
    ("file-dev-null", [*INIT, "/dev/null"]),
    ("heldout-unknown-labels", ["heldout", "load", "trec", "--data", "{files}/unknown_labels.csv"]),
    ("heldout-garbage", ["heldout", "load", "trec", "--data", "{files}/garbage.csv"]),
    ("eval-test-file-missing", ["eval", "trec", "--test", "{files}/missing.csv", "--no-downstream"]),
    # export
    ("export-format-xml", ["export", "trec", "--format", "xml"]),
    ("export-status-bogus", ["export", "trec", "--status", "bogus", "--out", "{tmp}/out.jsonl"]),
    ("export-out-directory", ["export", "trec", "--out", "{tmp}"]),
    ("export-out-unwritable", ["export", "trec", "--out", "/proc/datagen-x/out.jsonl"]),
    ("export-out-under-a-file", ["export", "trec", "--out", "{files}/good.csv/out.jsonl"]),
    ("export-out-project-file", ["export", "trec", "--out", "{home}/other.duckdb"]),
    ("export-unknown-run", ["export", "trec", "--run", "nope", "--out", "{tmp}/out.jsonl"]),
    # endpoints and runs
    ("base-url-not-a-url", ["run", "trec", "--per-label", "2", "--base-url", "notaurl", "--model", "m"]),
    ("base-url-ftp", ["run", "trec", "--per-label", "2", "--base-url", "ftp://host/v1", "--model", "m"]),
    ("base-url-bad-port", ["run", "trec", "--per-label", "2", "--base-url", "http://host:99999/v1", "--model", "m"]),
    ("base-url-unreachable", ["run", "trec", "--per-label", "2", "--base-url", "http://127.0.0.1:1/v1",
                              "--model", "m"]),
    ("base-url-without-model", ["run", "trec", "--per-label", "2", "--base-url", "http://127.0.0.1:1/v1"]),
    ("model-empty", ["run", "trec", "--per-label", "2", "--base-url", "http://127.0.0.1:1/v1", "--model", ""]),
    ("model-blank", ["run", "trec", "--per-label", "2", "--base-url", "http://127.0.0.1:1/v1", "--model", "  "]),
    ("genes-propose-not-a-url", ["genes", "propose", "trec", "--base-url", "notaurl", "--model", "m"]),
    ("genes-propose-unreachable", ["genes", "propose", "trec", "--base-url", "http://127.0.0.1:1/v1",
                                   "--model", "m"]),
    ("run-without-per-label", ["run", "trec"]),
    ("run-unknown-method", ["run", "trec", "--per-label", "2", "--method", "bogus"]),
    ("run-unknown-label", ["run", "trec", "--per-label", "2", "--labels", "NOPE"]),
    ("run-unknown-check", ["run", "trec", "--per-label", "2", "--check", "bogus"]),
    ("run-temperature-9", ["run", "trec", "--per-label", "2", "--temperature", "9"]),
    ("run-top-p-0", ["run", "trec", "--per-label", "2", "--top-p", "0"]),
    ("run-max-tokens-0", ["run", "trec", "--per-label", "2", "--max-tokens", "0"]),
    ("run-resume-nothing", ["run", "trec", "--resume"]),
    ("run-resume-and-top-up", ["run", "trec", "--resume", "--top-up"]),
    ("check-unknown", ["check", "trec", "--check", "bogus"]),
    ("check-unknown-run", ["check", "trec", "--run", "nope"]),
    ("eval-bad-mode", ["eval", "trec", "--modes", "real"]),
    ("eval-unknown-run", ["eval", "trec", "--runs", "nope"]),
    # editing a project
    ("genes-remove-unknown", ["genes", "remove", "trec", "colour"]),
    ("genes-set-empty-name", ["genes", "set", "trec", ":"]),
    ("genes-set-twice", ["genes", "set", "trec", "tone", "Tone"]),
    ("labels-describe-unknown", ["labels", "describe", "trec", "NOPE", "a description"]),
    ("topics-set-unknown-label", ["topics", "set", "trec", "NOPE", "a topic"]),
    ("attributes-set-blank", ["attributes", "set", "trec", "   ", "a value"]),
]

#: (id, environment variables, arguments): what the environment can get wrong.
ENV_CASES: list[tuple[str, dict[str, str], list[str]]] = [
    ("env-timeout-not-a-number", {"DATAGEN_TIMEOUT": "soon"},
     ["run", "trec", "--per-label", "2", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"]),
    ("env-base-url-not-a-url", {"DATAGEN_BASE_URL": "localhost:8000"}, ["run", "trec", "--per-label", "2",
                                                                        "--model", "m"]),
    ("env-home-is-a-file", {"DATAGEN_HOME": "{files}/good.csv"}, ["projects"]),
]


def snapshot(path: Path) -> object:
    """Every file under `path` with its size and modification time (or what `path` itself is)."""
    if not path.exists():
        return None
    if not path.is_dir():
        return path.stat().st_size, path.stat().st_mtime_ns
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def _no_generation(*args: object, **kwargs: object) -> None:
    raise AssertionError("a hostile input reached generation")


@pytest.fixture(scope="module")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("template"))


@pytest.fixture
def world(tmp_path: Path, project_template: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A home holding project `trec`, the corpus files and a scratch folder; the environment names no model."""
    home, files, scratch = tmp_path / "home", tmp_path / "files", tmp_path / "scratch"
    for folder in (home, files, scratch):
        folder.mkdir()
    shutil.copy(project_template, home / "trec.duckdb")
    for name, content in FILES.items():
        if callable(content):
            content(files / name)
        else:
            (files / name).write_bytes(content)
    for variable in ("DATAGEN_BASE_URL", "DATAGEN_MODEL", "DATAGEN_TIMEOUT", "DATAGEN_FIRST_BYTE_TIMEOUT",
                     "DATAGEN_RETRIES", "DATAGEN_GIVE_UP_AFTER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATAGEN_HOME", str(home))
    monkeypatch.setattr("datagen_core.cli.run.run_generation", _no_generation)
    return {"home": str(home), "files": str(files), "tmp": str(scratch)}


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code == 1, (code, err)
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)


def expand(args: list[str], world: dict[str, str]) -> list[str]:
    return [arg.format(**world) if "{" in arg else arg for arg in args]


@pytest.mark.parametrize(("args"), [args for _, args in CASES], ids=[case_id for case_id, _ in CASES])
def test_hostile_input_is_one_error_line_and_leaves_the_home_as_it_was(
    args: list[str], world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    home = Path(world["home"])
    before = snapshot(home)
    code, _, err = run_main(expand(args, world), capsys)
    assert_one_error_line(code, err)
    assert snapshot(home) == before
    assert not list(Path("/proc").glob("datagen-x*"))


@pytest.mark.parametrize(("env", "args"), [(env, args) for _, env, args in ENV_CASES],
                         ids=[case_id for case_id, _, _ in ENV_CASES])
def test_a_bad_environment_is_one_error_line(
    env: dict[str, str], args: list[str], world: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = Path(world["home"])
    before = snapshot(home)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value.format(**world))
    code, _, err = run_main(args, capsys)
    assert_one_error_line(code, err)
    assert snapshot(home) == before


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) + len(ENV_CASES) >= 60


MESSAGES = {
    "holdout-0.95": "--holdout must be from 0 to 0.9",
    "file-bytes_text.parquet": "column 'text' holds bytes values",
    "file-list_label.parquet": "column 'label' holds ndarray values",
    "file-nested_text.jsonl": "column 'text' holds dict values",
    "name-trailing-newline": "project name 'p\\n' must be",
    "export-status-bogus": "--status must be one of pending, accepted, rejected",
    "export-out-directory": "is a folder",
    "home-is-a-file": "is a file, not a folder",
    "base-url-not-a-url": "is not an http(s) URL",
    "base-url-unreachable": "cannot reach the LLM endpoint http://127.0.0.1:1/v1",
    "run-per-label-0": "--per-label",
    "unknown-command": "No such command 'bogus' (see `datagen --help`)",
    "heldout-unknown-labels": "unknown label(s) ['NADA', 'NOPE']",
    "file-surplus_fields.csv": "rows have more fields than the header",
}


@pytest.mark.parametrize("case_id", sorted(MESSAGES))
def test_the_line_says_what_is_wrong(case_id: str, world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    args = dict(CASES)[case_id]
    _, _, err = run_main(expand(args, world), capsys)
    assert MESSAGES[case_id] in err


SUBPROCESS_CASES = ["init-missing-data", "unknown-option", "file-bytes_text.parquet", "name-trailing-newline",
                    "base-url-unreachable", "holdout-0.95"]


def entry_point() -> list[str]:
    script = Path(sys.executable).with_name("datagen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "datagen_core.cli.app"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_the_real_entry_point_prints_one_line_too(case_id: str, world: dict[str, str]) -> None:
    home = Path(world["home"])
    before = snapshot(home)
    done = subprocess.run([*entry_point(), *expand(dict(CASES)[case_id], world)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "DATAGEN_HOME": str(home), "COLUMNS": "40"})
    assert_one_error_line(done.returncode, done.stderr)
    assert snapshot(home) == before


def test_help_of_a_group_is_not_an_error(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["genes"], capsys)
    assert code == 0 and "propose" in out and err == ""


def test_labels_that_look_like_rich_markup_print_as_they_are(
    world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(world["tmp"]) / "markup.csv"
    data.write_text('text,label\nhello there friend,[/x]\nhow are you doing,[/x]\nbuy cheap pills,[bold]b\n'
                    'win a free prize,[bold]b\n')
    code, out, err = run_main(["init", "m", "--task", "t", "--data", str(data), "--label-desc", "[/x]=[red]odd[/]"],
                              capsys)
    assert code == 0, err
    assert "[/x] 2" in out and "[bold]b 2" in out
    code, out, err = run_main(["labels", "list", "m"], capsys)
    assert code == 0 and "[/x]" in out and "[red]odd[/]" in out, err
    code, out, err = run_main(["genes", "set", "m", "[/y]: a [b]gene[/b]"], capsys)
    assert code == 0 and "[/y]: a [b]gene[/b]" in out, err
    code, out, err = run_main(["topics", "set", "m", "[/x]", "[/topic]"], capsys)
    assert code == 0 and "[/topic]" in out, err


def test_numeric_labels_in_parquet_are_text(world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(world["tmp"]) / "numeric.parquet"
    pq.write_table(pa.table({"text": ["a b c", "d e f", "g h i", "j k l"], "label": [0, 0, 1, 1]}), data)
    code, out, err = run_main(["init", "n", "--task", "t", "--data", str(data)], capsys)
    assert code == 0 and "0 2, 1 2" in out, err


def write_large_csv(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("text,label\n")
        for start in range(0, rows, 50_000):
            out.write("".join(f"message number {i} about something or other,label{i % 3}\n"
                              for i in range(start, min(start + 50_000, rows))))


def partials(home: Path) -> list[Path]:
    return [p for p in home.glob(f".*{PARTIAL_MARK}*") if not p.name.endswith(".wal")]


def test_a_killed_init_leaves_no_project_and_blocks_no_reinit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, data = tmp_path / "home", tmp_path / "large.csv"
    write_large_csv(data, 600_000)
    init = [*entry_point(), "init", "big", "--task", "t", "--data", str(data), "--home", str(home)]
    child = subprocess.Popen(init, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not partials(home) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert partials(home), "the partial project file never appeared"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (home / "big.duckdb").exists() and partials(home)  # what a killed init leaves: hidden, not a project
    code, out, _ = run_main(["projects", "--home", str(home)], capsys)
    assert code == 0 and "big" not in out
    assert Workspace(home).projects() == []
    code, out, err = run_main(["init", "big", "--task", "t", "--data", str(data), "--home", str(home)], capsys)
    assert code == 0 and "600000 examples" in out, err
    assert not partials(home)  # the dead creation's leftover is gone
    with Store.open(home / "big.duckdb") as store:
        assert sum(store.real_counts().values()) == 600_000


def test_a_failed_create_leaves_nothing_and_the_studio_path_is_atomic_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    examples = pd.DataFrame({"text": ["a b c", "d e f", "g h i", "j k l"], "label": ["x", "x", "y", "y"]})
    workspace = Workspace(home)
    try:
        with pytest.raises(DatagenError, match="project name"):
            workspace.create_project(ProjectSpec.model_construct(name="p\n", task="t"), [Label(name="x")],
                                     examples, None)
        broken = examples.drop(columns=["text"])
        with pytest.raises(KeyError):
            workspace.create_project(ProjectSpec(name="p", task="t"), [Label(name="x"), Label(name="y")], broken,
                                     None)
        assert sorted(p.name for p in home.iterdir()) == []
        store = workspace.create_project(ProjectSpec(name="p", task="t"), [Label(name="x"), Label(name="y")],
                                         examples, None)
        assert store.real_counts() == {"x": 2, "y": 2} and workspace.projects() == ["p"]
        assert sorted(p.name for p in home.iterdir()) == ["p.duckdb"]
    finally:
        workspace.close()


def test_a_large_file_reports_its_progress_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "large.csv"
    write_large_csv(data, 200_000)  # about 10 MB: above the size that reports progress
    code, _, err = run_main(["init", "big", "--task", "t", "--data", str(data), "--home", str(tmp_path / "h")],
                            capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) >= 2 and lines[0].startswith("reading large.csv: ") and "rows" in lines[0]
    assert lines[-1].startswith("writing 200,000 examples to ")

