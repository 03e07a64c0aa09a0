"""What every page shares: the process-wide workspace, the open project and this session's LLM settings.

The workspace (stores, embedder, background runs) is one per process and per project folder, shared by
every browser session; the chosen project and the LLM settings (an API key typed here included) live in
the session only and are never written to disk.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import streamlit as st
from pydantic import ValidationError
from streamlit.runtime.pages_manager import PagesManager

from datagen_core.config import LLMConfig, redact_url
from datagen_core.errors import DatagenError
from datagen_core.store import Store, default_home
from datagen_core.store.connection import ProjectInUseError
from datagen_core.workspace import Workspace
from studio.render import code, md

T = TypeVar("T")

PROJECT_KEY = "project"
MISSING_KEY = "project_missing"  # a project the URL named that this folder does not hold
ROUTED_KEY = "routed_through_app"  # this session left Streamlit's pages/-folder routing once
ACTIVITY_SECONDS = 2.0  # how often the sidebar's run and evaluation lines redraw while one goes on
LLM_KEY = "llm_config"


@st.cache_resource(show_spinner=False)
def _workspace(home: str) -> Workspace:
    workspace = Workspace(Path(home))
    workspace.ensure_demo()
    # Streamlit exits normally on SIGTERM or Ctrl+C: runs then stop as Pause does (what landed is kept, the
    # run is left interrupted and resumable) instead of dying mid-batch with their daemon threads.
    atexit.register(workspace.close)
    return workspace


def workspace() -> Workspace:
    """The workspace of $DATAGEN_HOME (default ./datagen-projects), with the demo project in it."""
    _route_through_app()
    return _workspace(str(default_home().resolve()))


def _route_through_app() -> None:
    """Until app.py has called `st.navigation` once in this process, Streamlit routes by the `pages/` folder (its
    older multipage mode): a bookmark opened as a freshly started studio's first visit would run its page alone,
    without app.py's sidebar, navigation or project from the URL. Leave that mode and rerun, and the same URL goes
    through app.py's navigation (every page reaches this through the workspace). Once per session: the mode is the
    process's, and a session's later runs never meet it again."""
    if PagesManager.uses_pages_directory and not st.session_state.get(ROUTED_KEY):
        st.session_state[ROUTED_KEY] = True
        PagesManager.uses_pages_directory = False
        st.rerun()


def project_name() -> str:
    """The project this session works on: the one the URL names (`?project=NAME`, so a reload, a new tab or a
    shared link opens it), else the shipped demo."""
    if PROJECT_KEY not in st.session_state:
        asked = st.query_params.get(PROJECT_KEY)
        known = asked is not None and asked in workspace().projects()
        st.session_state[PROJECT_KEY] = asked if known else workspace().ensure_demo()
        if asked is not None and not known:
            st.session_state[MISSING_KEY] = asked
    return st.session_state[PROJECT_KEY]


def open_project(name: str) -> None:
    st.session_state[PROJECT_KEY] = name
    st.query_params[PROJECT_KEY] = name


def open_problem() -> str | None:
    """Why the session's project cannot be opened (held by another process, a broken or newer file), as one
    markdown-safe line; None when it opens. Nothing is cached for a failure, so a reload tries again."""
    name = project_name()
    try:
        workspace().store(name)
    except ProjectInUseError as exc:
        holder = f"PID {exc.pid}, " if exc.pid is not None else ""
        return (f"Project {code(name)} is open in another process ({holder}likely a `datagen` CLI run): wait for "
                "it to finish or stop it, then reload this page; or pick another project in the sidebar.")
    except DatagenError as exc:
        return f"Project {code(name)} cannot be opened: {md(' '.join(str(exc).split()))}"
    return None


def opened_store() -> Store | None:
    """The session's project, or None after a line saying why it cannot be opened."""
    if (problem := open_problem()) is not None:
        st.error(problem, icon="⚠️")
        return None
    return workspace().store(project_name())


def store() -> Store:
    """The session's project. One that cannot be opened stops the page after a line saying why, instead of an
    exception; the sidebar, drawn first, still switches to another project."""
    opened = opened_store()
    if opened is None:
        st.stop()
    return opened


def llm_config() -> LLMConfig:
    """This session's model: set on the Project page; by default $DATAGEN_BASE_URL or the embedded model."""
    if LLM_KEY not in st.session_state:
        st.session_state[LLM_KEY] = LLMConfig.from_env()
    return st.session_state[LLM_KEY]


def set_llm_config(config: LLMConfig) -> None:
    st.session_state[LLM_KEY] = config


@contextmanager
def user_errors() -> Iterator[None]:
    """`with user_errors():` shows a user error as a message and lets the rest of the page draw."""
    try:
        yield
    except DatagenError as exc:
        st.error(md(exc), icon="⚠️")
    except ValidationError as exc:
        st.error(md(exc.errors()[0]["msg"].removeprefix("Value error, ")), icon="⚠️")


def attempt(action: Callable[[], T]) -> T | None:
    """Run a user action; a user error (bad file, dead endpoint, ...) becomes a message, and None."""
    with user_errors():
        return action()
    return None


def sidebar() -> None:
    """The project switcher, the model in use and the runs and evaluation going on, on every page."""
    ws = workspace()
    names = ws.projects()
    current = project_name()
    # Every page keeps the project in the URL (switching pages starts from the page's own address).
    if st.query_params.get(PROJECT_KEY) != current:
        st.query_params[PROJECT_KEY] = current
    if (missing := st.session_state.pop(MISSING_KEY, None)) is not None:
        st.warning(f"No project {code(missing)} in this folder: the demo project is open instead.", icon="⚠️")
    with st.sidebar:
        # Keyed by the open project: after a switch made elsewhere the browser's old choice belongs to a widget
        # that no longer exists, so it cannot switch the project back.
        key = f"sidebar_project:{current}"
        st.selectbox("Project", names, index=names.index(current) if current in names else 0, key=key,
                     on_change=lambda: open_project(st.session_state[key]))
        config = llm_config()
        where = "embedded, offline" if config.backend == "embedded" else redact_url(config.base_url or "")
        st.caption(f"Model: **{md(config.model)}** ({md(where)})")
        if open_problem() is None:  # else the page says why
            busy = bool(activity_lines())
            st.fragment(_activity, run_every=ACTIVITY_SECONDS if busy else None)(busy)
        if os.environ.get("DATAGEN_HOME"):
            st.caption(f"Projects in {code(ws.home)}")


def activity_lines() -> list[str]:
    """The runs and the evaluation this process is working on for the open project, one line each."""
    ws = workspace()
    lines = []
    for job in ws.runs.active(store()):
        snap = job.snapshot()
        lines.append(f"Run {snap.run_id}: {snap.state}, {snap.kept}/{snap.target}"
                     + (f" · {md(snap.phase)}" if snap.phase else ""))
    evaluation = ws.evaluations.job(store())
    if evaluation is not None and (progress := evaluation.snapshot()).active:
        lines.append(f"Evaluation: step {min(progress.done + 1, progress.total)} of {progress.total}")
    return lines


def _activity(ticking: bool) -> None:
    """The sidebar's activity lines, redrawn on their own every few seconds while something goes on; when it
    all ends, the whole page redraws once so nothing else stays stale."""
    lines = activity_lines()
    if ticking and not lines:
        st.rerun()
    for line in lines:
        st.caption(line)
