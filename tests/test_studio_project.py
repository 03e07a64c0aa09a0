"""The studio's Project page: creating from an upload, opening, editing details and choosing the LLM."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.config import Label, LLMConfig, ProjectSpec
from datagen_core.errors import DatagenError
from datagen_core.ingest import NewProject, prepare_project, read_upload
from datagen_core.store import SCHEMA_VERSION, Store, project_path
from datagen_core.workspace import Workspace

from .loopback_server import LoopbackServer
from .studio_helpers import Studio, button, errors, studio_session

GOOD_CSV = (
    b"message,category,id\n"
    b"Are we still on for lunch tomorrow?,ham,1\n"
    b"WINNER! Claim your free cruise now,spam,2\n"
    b'"Running late, see you at the station",ham,3\n'
    b'"Urgent: your account needs verification, reply YES",spam,4\n'
    b"Can you pick up milk on the way home,ham,5\n"
)


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def prepare(raw: pd.DataFrame, **overrides: str) -> NewProject:
    answers = {"text_col": "message", "label_col": "category", "source": "upload.csv", "name": "sms-mine",
               "task": "SMS spam detection", "text_kind": "SMS message"} | overrides
    return prepare_project(raw, **answers, label_descriptions={"spam": "unsolicited"})


# ------------------------------------------------------------------ core logic the page calls on an upload
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.csv", b'text,label\n"never closed,ham\nok,spam\n', "cannot parse as csv"),
        ("ragged.csv", b"text,label\nhello,ham\none,two,three,four\n", "cannot parse as csv"),
        ("latin1.csv", "text,label\ncafé crème,ham\nthé,spam\n".encode("latin-1"), "not UTF-8"),
        ("empty.csv", b"", "the file is empty"),
        ("one-column.csv", b"text\nhello\nworld\n", "at least two columns"),
        ("data.xlsx", b"PK\x03\x04", "unsupported file type"),
        ("broken.parquet", b"PAR1 not really parquet", "cannot parse as parquet"),
        ("broken.jsonl", b'{"text": "hi", "label": "ham"}\n{"text": \n', "cannot parse as jsonl"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DatagenError, match=message):
        read_upload(name, data)


def test_bad_answers_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    raw = read_upload("upload.csv", GOOD_CSV)
    assert list(raw.columns) == ["message", "category", "id"] and len(raw) == 5
    with pytest.raises(DatagenError, match=r"missing column.*'label'"):
        prepare(raw, label_col="label")
    with pytest.raises(DatagenError, match="different columns"):
        prepare(raw, label_col="message")
    one_example = pd.concat([raw, pd.DataFrame([{"message": "lonely", "category": "other", "id": "6"}])])
    with pytest.raises(DatagenError, match="'other' have fewer than 2 examples"):
        prepare(one_example)
    with pytest.raises(DatagenError, match="project name 'my project!' must be"):
        prepare(raw, name="my project!")
    with pytest.raises(DatagenError, match="describe the task"):
        prepare(raw, task="  ")

    new = prepare(raw, text_kind="")
    assert new.spec == ProjectSpec(name="sms-mine", task="SMS spam detection", text_kind="text")
    assert new.labels == [Label(name="ham"), Label(name="spam", description="unsolicited")]
    assert sorted(new.examples.columns) == ["label", "text"] and len(new.examples) == 5

    workspace = Workspace(tmp_path / "projects")
    try:
        store = workspace.create_project(new.spec, new.labels, new.examples, source=new.source)
        assert store.real_counts() == {"ham": 3, "spam": 2}
        with pytest.raises(DatagenError, match="already exists"):
            workspace.create_project(new.spec, new.labels, new.examples, source=new.source)
        assert workspace.projects() == ["sms-mine"]
    finally:
        workspace.close()


# ----------------------------------------------------------------------------------------- the page
def test_create_a_project_from_an_upload(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    assert at.session_state["project"] == "sms-spam-demo" and "Project sms-spam-demo" in subheaders(at)

    # a broken file: one message, the rest of the page still works
    at.file_uploader(key="upload").set_value(("broken.csv", b'text,label\n"never closed,ham\n', "text/csv"))
    at.run()
    assert not at.exception and any("cannot parse as csv" in e for e in errors(at))
    assert "Language model" in subheaders(at) and not [b for b in at.button if b.label == "Create project"]

    # a label with one example: the preview shows, validation stops before the form
    at.file_uploader(key="upload").set_value(("few.csv", GOOD_CSV + b"lonely,other,6\n", "text/csv"))
    at.run()
    assert any("'other' have fewer than 2 examples" in e for e in errors(at)) and len(at.dataframe) >= 2
    assert not [b for b in at.button if b.label == "Create project"]

    at.file_uploader(key="upload").set_value(("my sms.csv", GOOD_CSV, "text/csv"))
    at.run()
    assert not errors(at)
    # no `text`/`label` columns: the first two columns are proposed
    assert at.selectbox(key="new_text_col").value == "message"
    assert at.selectbox(key="new_label_col").value == "category"
    assert any("5 usable examples in 2 labels" in s.value for s in at.success)
    assert at.text_input(key="new_name").value == "my-sms"

    at.text_input(key="new_name").input("sms-spam-demo")  # taken
    at.text_input(key="new_task").input("SMS spam detection")
    button(at, "Create project").click()
    at.run()
    assert any("already exists" in e for e in errors(at)) and at.session_state["project"] == "sms-spam-demo"

    at.text_input(key="new_name").input("mine")
    at.text_input(key="new_kind").input("SMS message")
    at.text_input(key="new_desc_1").input("an unsolicited commercial message")
    button(at, "Create project").click()
    at.run()
    assert not at.exception and not errors(at)
    assert at.session_state["project"] == "mine" and "Project mine" in subheaders(at)
    assert any("Created and opened **mine**" in s.value for s in at.success)
    store = studio.workspace().store("mine")
    assert store.project().task == "SMS spam detection" and store.project().text_kind == "SMS message"
    assert store.project().source_file == "my sms.csv"
    assert store.labels() == [Label(name="ham"), Label(name="spam", description="an unsolicited commercial message")]
    assert store.real_counts() == {"ham": 2, "spam": 2} and store.heldout_counts() == {"ham": 1}  # 0.2 held out
    assert sorted(studio.workspace().projects()) == ["mine", "sms-spam-demo"]


def test_open_another_project(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    examples = pd.DataFrame({"text": ["where is Rome", "where is Oslo", "who wrote Emma", "who painted it"],
                             "label": ["LOC", "LOC", "HUM", "HUM"]})
    studio.workspace().create_project(ProjectSpec(name="trec-mini", task="question type", text_kind="question"),
                                      [Label(name="LOC"), Label(name="HUM")], examples, source="inline")
    at.run()
    assert at.selectbox(key="open_choice").options == ["sms-spam-demo", "trec-mini"]
    at.selectbox(key="open_choice").select("trec-mini")
    button(at, "Open").click()
    at.run()
    assert not at.exception and at.session_state["project"] == "trec-mini"
    assert "Project trec-mini" in subheaders(at)
    assert at.text_input(key="task_trec-mini").value == "question type"
    # the label table shows the real-example counts
    labels = at.dataframe[0].value
    assert dict(zip(labels["label"], labels["real examples"], strict=True)) == {"LOC": 2, "HUM": 2}
    at.run()  # stays open on the next interaction
    assert at.session_state["project"] == "trec-mini"
    at.switch_page("pages/genes.py").run()
    assert not at.exception and at.session_state["project"] == "trec-mini"


def test_edit_task_and_label_descriptions(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    store = studio.workspace().store("sms-spam-demo")
    at.text_input(key="task_sms-spam-demo").input("spam filtering for a phone operator")
    at.text_input(key="kind_sms-spam-demo").input("text message")
    at.text_input(key="desc_sms-spam-demo_1").input("junk: prizes, loans, premium numbers")
    assert at.number_input(key="min_words_sms-spam-demo").value == 3  # the default minimum length
    at.number_input(key="min_words_sms-spam-demo").set_value(5)
    button(at, "Save details").click()
    at.run()
    assert not at.exception and not errors(at)
    assert any("Saved the project's details" in s.value for s in at.success)
    assert store.project().task == "spam filtering for a phone operator"
    assert store.project().text_kind == "text message" and store.project().min_words == 5
    assert {lb.name: lb.description for lb in store.labels()}["spam"] == "junk: prizes, loans, premium numbers"

    at.text_input(key="task_sms-spam-demo").input("   ")
    at.text_input(key="desc_sms-spam-demo_0").input("should not be saved")
    button(at, "Save details").click()
    at.run()
    assert not at.exception and any("task cannot be empty" in e for e in errors(at))
    assert store.project().task == "spam filtering for a phone operator"
    assert "should not be saved" not in {lb.description for lb in store.labels()}


def test_choose_an_endpoint_and_test_the_connection(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    assert at.session_state["llm_config"].backend == "embedded"
    at.radio(key="llm_choice").set_value("OpenAI-compatible endpoint").run()
    assert at.text_input(key="llm_key").proto.type == at.text_input(key="llm_key").proto.PASSWORD
    assert any("OPENAI_API_KEY" in c.value for c in at.caption)

    at.text_input(key="llm_url").input("http://127.0.0.1:9/v1")
    at.text_input(key="llm_model").input("some-model")
    button(at, "Test connection").click()
    at.run()
    assert not at.exception
    assert any("cannot reach" in e and "127.0.0.1:9" in e for e in errors(at))
    assert at.session_state["llm_config"].base_url == "http://127.0.0.1:9/v1"

    at.text_input(key="llm_model").input("")  # a URL without a model is refused, the old settings stay
    button(at, "Use this model").click()
    at.run()
    assert any("needs a model name" in e for e in errors(at))
    assert at.session_state["llm_config"].model == "some-model"

    secret = "sk-session-only-4711"
    with LoopbackServer(api_key=secret) as server:
        at.text_input(key="llm_url").input(server.base_url)
        at.text_input(key="llm_model").input("loopback")
        at.text_input(key="llm_key").input(secret)
        button(at, "Test connection").click()
        at.run()
        assert not errors(at), errors(at)
        assert any(s.value.startswith("Connected: loopback answered") for s in at.success)
        config = at.session_state["llm_config"]
        assert config.backend == "openai" and config.model == "loopback" and config.api_key() == secret
        assert server.stats.completions >= 1

        at.text_input(key="llm_key").input("sk-wrong")  # the loopback server checks the key
        button(at, "Test connection").click()
        at.run()
        assert any("refused the API key" in e for e in errors(at)) and not at.success

    # the key lives in the session only: not in the project files, not in the serialised config
    assert secret not in config.model_dump_json()
    for path in studio.home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path

    at.radio(key="llm_choice").set_value("Embedded (SmolLM2-135M, offline)")
    button(at, "Use this model").click()
    at.run()
    assert at.session_state["llm_config"].backend == "embedded" and not errors(at)


def test_the_system_check_shows_the_latest_report_and_runs_again(studio: Studio, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from datagen_core import doctor

    monkeypatch.setenv("DATAGEN_RUNTIME_DIR", str(tmp_path / "runtime"))  # no report on this "machine" yet
    at = studio.open_page("pages/project.py")
    assert "System check" in subheaders(at)
    assert any("No check has run" in c.value for c in at.caption)

    # what `datagen doctor` (scripts/start.sh) left behind is shown, a failure with its fix
    failing = doctor.Finding("runtime", "fail", "uses AVX512; this machine cannot run AVX512", "rebuild <b>it</b>")
    monkeypatch.setattr(doctor, "checks", lambda home: [("python", doctor.check_python), ("runtime", lambda: failing)])
    doctor.diagnose(studio.home)
    at = studio.open_page("pages/project.py")
    assert any("1 check(s) failed" in e and "runtime" in e for e in errors(at))
    lines = at.code[-1].value.splitlines()  # shown as text, the way `datagen doctor` prints it
    assert lines[0].startswith("ok   python") and lines[1].startswith("fail runtime   uses AVX512")
    assert lines[2].strip() == "fix: rebuild <b>it</b>"

    # "Check again" runs the checks of the studio's home (the embedder skipped: the studio has one loaded)
    home_only = [("home", lambda: doctor.check_home(studio.home))]
    monkeypatch.setattr(doctor, "checks", lambda home: home_only)
    button(at, "Check again").click()
    at.run()
    assert not errors(at) and any("Every check passed" in c.value for c in at.caption)
    assert at.code[-1].value.startswith("ok   home")


def session_on(studio: Studio, project: str) -> AppTest:
    """A new browser session that picked `project` in the sidebar, run once (AppTest sees the sidebar only on a
    session's first run)."""
    at = studio.app()
    at.session_state["project"] = project
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert project in at.sidebar.selectbox(key=f"sidebar_project:{project}").options
    return at


def closed_project(home: Path, name: str) -> Path:
    """A small project file the studio has not opened (as `datagen init` leaves one)."""
    examples = pd.DataFrame({"text": ["where is Rome", "where is Oslo", "who wrote Emma", "who painted it"],
                             "label": ["LOC", "LOC", "HUM", "HUM"]})
    path = project_path(home, name)
    with Store.create(path, ProjectSpec(name=name, task="question type"), [Label(name="LOC"), Label(name="HUM")],
                      examples, "inline"):
        return path


def test_a_project_held_by_a_cli_run_is_one_line_and_another_can_be_picked(studio: Studio) -> None:
    studio.open_page("pages/project.py")  # creates the folder and the demo
    path = closed_project(studio.home, "held")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True);"
         " time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        at = session_on(studio, "held")
        (line,) = errors(at)
        assert line.startswith("Project `held` is open in another process") and f"PID {holder.pid}" in line
        assert "wait for it to finish or stop it" in line and "\n" not in line
        # the rest of the Project page stays usable (create a project, choose the model), the sidebar switches
        assert {"Open a project", "Language model", "Create a project"} <= set(subheaders(at))
        at.sidebar.selectbox(key="sidebar_project:held").select("sms-spam-demo").run()
        assert not at.exception and not errors(at) and at.session_state["project"] == "sms-spam-demo"
        at.session_state["project"] = "held"
        for page in ("pages/genes.py", "pages/evolve.py", "pages/review.py", "pages/export.py"):
            at.switch_page(page).run()
            assert not at.exception and errors(at) == [line], page
    finally:
        holder.kill()
        holder.wait()
    at.run()  # the CLI run is over: the project opens
    assert not at.exception and not errors(at) and at.title[0].value == "Export"


def newer_project(home: Path, name: str) -> None:
    path = closed_project(home, name)
    with duckdb.connect(str(path)) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda home, name: project_path(home, name).write_bytes(b"not a database" * 100),
         "not a valid DuckDB database file"),
        (lambda home, name: duckdb.connect(str(project_path(home, name))).close(), "is not a project file"),
        (newer_project, f"written by a newer version of the studio (schema {SCHEMA_VERSION + 1}"),
    ],
    ids=["not-duckdb", "no-schema", "newer-schema"],
)
def test_a_broken_project_file_is_one_line_and_another_can_be_picked(
        studio: Studio, make: Callable[[Path, str], object], reason: str) -> None:
    studio.open_page("pages/project.py")  # creates the folder and the demo
    make(studio.home, "broken")
    at = session_on(studio, "broken")
    (line,) = errors(at)
    assert line.startswith("Project `broken` cannot be opened: ") and reason in line and "\n" not in line
    at.sidebar.selectbox(key="sidebar_project:broken").select("sms-spam-demo").run()
    assert not at.exception and not errors(at) and at.session_state["project"] == "sms-spam-demo"
    at.session_state["project"] = "broken"
    at.switch_page("pages/review.py").run()
    assert not at.exception and errors(at) == [line]


def test_endpoint_timeouts_and_retries_are_set_on_the_project_page(studio: Studio,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAGEN_TIMEOUT", "42")  # the session's config reads it, so the widget starts there
    at = studio.open_page("pages/project.py")
    at.radio(key="llm_choice").set_value("OpenAI-compatible endpoint").run()
    assert "Advanced: timeouts and retries" in [e.label for e in at.expander]
    assert at.number_input(key="llm_timeout_s").value == 42.0
    assert at.number_input(key="llm_max_retries").value == 5
    at.text_input(key="llm_url").input("http://127.0.0.1:9/v1")
    at.text_input(key="llm_model").input("some-model")
    at.number_input(key="llm_first_byte_timeout_s").set_value(7.5)
    at.number_input(key="llm_timeout_s").set_value(60.0)
    at.number_input(key="llm_max_retries").set_value(2)
    at.number_input(key="llm_give_up_after_s").set_value(90.0)
    button(at, "Use this model").click()
    at.run()
    assert not at.exception and not errors(at)
    config = at.session_state["llm_config"]
    assert (config.first_byte_timeout_s, config.timeout_s, config.max_retries, config.give_up_after_s) == (
        7.5, 60.0, 2, 90.0)

    # a value LLMConfig refuses is one line naming the setting; the session keeps what it had
    for key, value, message in (("llm_max_retries", 21, "Retries: input should be less than or equal to 20"),
                                ("llm_first_byte_timeout_s", 0.0, "First byte within (s): input should be greater "
                                                                  "than 0")):
        at.number_input(key=key).set_value(value)
        button(at, "Use this model").click()
        at.run()
        assert not at.exception and errors(at) == [message]
        assert at.session_state["llm_config"] == config
        at.number_input(key=key).set_value(getattr(config, key.removeprefix("llm_")))


def test_a_key_in_the_endpoint_url_is_not_shown_in_the_sidebar(studio: Studio) -> None:
    at = studio.app()
    at.session_state["llm_config"] = LLMConfig(backend="openai", base_url="http://tok:sekrit@127.0.0.1:9/v1?key=k2",
                                               model="m")
    at.run()
    shown = " ".join(c.value for c in at.sidebar.caption)
    assert "127.0.0.1:9" in shown and "sekrit" not in shown and "k2" not in shown


TWEETS = [("Loving the sunshine today, best weekend in ages", "positive"),
          ("Stuck in traffic again and late for work, great", "negative"),
          ("Just finished a wonderful book, highly recommend it", "positive"),
          ("My phone died in the middle of the call, so annoying", "negative"),
          ("Coffee with old friends this morning made my day", "positive"),
          ("The train was cancelled and nobody told us anything", "negative")]


def tweets_csv(text_first: bool) -> bytes:
    rows = [(t, s) if text_first else (s, t) for t, s in TWEETS]
    header = "tweet,sentiment" if text_first else "sentiment,tweet"
    return "\n".join([header, *(f'"{a}","{b}"' for a, b in rows)]).encode()


@pytest.mark.parametrize("name", ["sms_spam.csv", "trec_coarse.csv", "imdb_reviews.csv",
                                  "nyt_editorial_sentiment.csv", "mmlu_sample.csv"])
def test_columns_are_guessed_by_content_on_real_data(name: str) -> None:
    from datagen_core.ingest import guess_columns

    from .conftest import shared_csv

    frame = pd.read_csv(shared_csv(name), dtype=str)
    assert guess_columns(frame) == ("text", "label")
    assert guess_columns(frame[["label", "text"]]) == ("text", "label")


def test_swapped_columns_of_a_new_upload_are_picked_by_content_and_create_uses_them(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    at.file_uploader(key="upload").set_value(("tweets.csv", tweets_csv(True), "text/csv"))
    at.run()
    assert (at.selectbox(key="new_text_col").value, at.selectbox(key="new_label_col").value) == ("tweet",
                                                                                                  "sentiment")
    at.file_uploader(key="upload").set_value(("tweets2.csv", tweets_csv(False), "text/csv"))
    at.run()
    assert (at.selectbox(key="new_text_col").value, at.selectbox(key="new_label_col").value) == ("tweet",
                                                                                                  "sentiment")
    assert any("6 usable examples in 2 labels" in s.value for s in at.success)
    at.text_input(key="new_name").input("tweets")
    at.text_input(key="new_task").input("sentiment of a tweet")
    button(at, "Create project").click()
    at.run()
    assert not at.exception and not errors(at), errors(at)
    store = studio.workspace().store("tweets")
    assert sorted(lb.name for lb in store.labels()) == ["negative", "positive"]
    assert set(store.real_examples()["text"]) <= {text for text, _ in TWEETS}


def test_the_url_names_the_open_project_so_a_reload_keeps_it(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    assert at.query_params["project"] == "sms-spam-demo"
    studio.workspace().create_project(ProjectSpec(name="tweets", task="sentiment"),
                                      [Label(name="positive"), Label(name="negative")],
                                      pd.DataFrame({"text": [t for t, _ in TWEETS], "label": [s for _, s in TWEETS]}),
                                      "tweets.csv")
    at.run()
    at.selectbox(key="open_choice").set_value("tweets")
    button(at, "Open").click()
    at.run()
    assert at.session_state["project"] == "tweets" and at.query_params["project"] == "tweets"
    # a reload or a new tab is a new session with the same URL: the same project opens
    again = studio.app()
    again.query_params["project"] = "tweets"
    again.run()
    assert again.session_state["project"] == "tweets" and not again.exception
    # a URL naming a project this folder does not hold opens the demo and says so
    stale = studio.app()
    stale.query_params["project"] = "gone"
    stale.run()
    assert stale.session_state["project"] == "sms-spam-demo" and stale.query_params["project"] == "sms-spam-demo"
    assert any("No project `gone` in this folder" in w.value for w in stale.warning)
