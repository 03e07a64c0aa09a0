"""The embedded model's process: a supervisor that runs llama-cpp-python's OpenAI-compatible server.

Native code (llama.cpp) never runs in the studio's, the CLI's or pytest's process: a SIGILL, SIGSEGV, abort or
OOM kill ends only the server. This supervisor is plain Python (it never loads llama.cpp); it starts the server
on a free 127.0.0.1 port, publishes `ready` with the port in a state file, and when the server dies writes *why*
(the signal) there, so every client can name it in one line. One supervisor serves the whole machine: clients
hold a shared lock on a lease file while they use it; when nobody has held it for `--idle` seconds the server is
stopped. `python -m datagen_core.llm.model_server --help` for the options; `datagen_core.llm.embedded` starts it.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

#: How long the server may take to load the model and answer /v1/models (it takes ~2 s here).
READY_TIMEOUT_S = 120.0
POLL_S = 0.5

_SIGNAL_MEANING = {
    signal.SIGILL: "illegal instruction: this llama.cpp build uses CPU instructions this machine cannot run; "
                   "rebuild it with `bash scripts/setup.sh`",
    signal.SIGSEGV: "segmentation fault in llama.cpp",
    signal.SIGBUS: "bus error in llama.cpp",
    signal.SIGABRT: "llama.cpp aborted",
    signal.SIGFPE: "arithmetic fault in llama.cpp",
    signal.SIGKILL: "out of memory (the kernel's OOM killer), or killed by a user",
    signal.SIGTERM: "terminated",
}


def describe_exit(returncode: int) -> str:
    """`killed by SIGSEGV (segmentation fault in llama.cpp)` or `exited with code 3`: how a process ended."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            return f"killed by signal {number}"
        meaning = _SIGNAL_MEANING.get(signal.Signals(number))
        return f"killed by {name} ({meaning})" if meaning else f"killed by {name}"
    return f"exited with code {returncode}"


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically: a reader sees the old state or the new one, never half of one."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(state), encoding="utf-8")
    os.replace(partial, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: What the server's process inherits. llama_cpp.server reads its settings from environment variables of the
#: same names (HOST, PORT, MODEL, API_KEY, ...): `HOST=0.0.0.0 PORT=8080 bash scripts/start.sh`, meant for the
#: studio, would otherwise move the model server onto the studio's port and every interface.
_INHERITED = ("PATH", "HOME", "USER", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
              "LD_LIBRARY_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def server_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith(("LC_", "OMP_", "GGML_"))}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _die_with_parent() -> None:
    """In the server's child: end with the supervisor (PR_SET_PDEATHSIG), so no orphaned model lingers."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)


def _answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _log_tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())[:600]


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state_path = Path(args.state)
        self.lease_path = Path(args.lease)
        self.log_path = Path(args.log)
        self.server: subprocess.Popen[bytes] | None = None
        self.base: dict[str, Any] = {"supervisor_pid": os.getpid(), "model": args.alias, "key": args.key}
        self._stopping = False

    def _state(self, status: str, **fields: Any) -> None:
        write_state(self.state_path, {**self.base, "status": status, "at": time.time(), **fields})

    def _command(self, port: int) -> list[str]:
        a = self.args
        return [sys.executable, "-m", "llama_cpp.server", "--model", a.model, "--model_alias", a.alias,
                "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(a.n_ctx), "--n_batch", "512",
                "--n_threads", str(a.threads), "--n_threads_batch", str(a.threads),
                "--interrupt_requests", "false", "--logits_all", "false", "--verbose", "false"]

    def start(self) -> bool:
        port = free_port()
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.server = subprocess.Popen(self._command(port), stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                           env=server_environment())
        base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.server.poll()
            if code is not None:
                self._state("failed", reason=f"the embedded model server {describe_exit(code)} while starting",
                            log=_log_tail(self.log_path))
                return False
            if _answers(base_url):
                self.base.update(server_pid=self.server.pid, port=port, base_url=base_url)
                self._state("ready", load_seconds=round(time.perf_counter() - started, 2))
                return True
            time.sleep(POLL_S / 2)
        self._stop_server()
        self._state("failed", reason=f"the embedded model server did not answer within {READY_TIMEOUT_S:.0f} s",
                    log=_log_tail(self.log_path))
        return False

    def _stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def _idle(self, lease: int) -> bool:
        """True when no client holds the lease (a shared lock) right now."""
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lease, fcntl.LOCK_UN)
        return True

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_stopping", True))
        if not self.start():
            return 1
        assert self.server is not None
        lease = os.open(self.lease_path, os.O_RDWR | os.O_CREAT, 0o600)
        idle_since: float | None = None
        while True:
            code = self.server.poll()
            if code is not None:
                self._state("died", reason=f"the embedded model process (pid {self.server.pid}) "
                                           f"{describe_exit(code)}", returncode=code)
                return 0
            if self._stopping:
                self._stop_server()
                self._state("stopped", reason="stopped on request")
                return 0
            if self._idle(lease):
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= self.args.idle:
                    # Hold the lease exclusively while stopping: a client arriving now waits, then starts anew.
                    fcntl.flock(lease, fcntl.LOCK_EX)
                    self._stop_server()
                    self._state("stopped", reason=f"idle for {self.args.idle:.0f} s")
                    fcntl.flock(lease, fcntl.LOCK_UN)
                    return 0
            else:
                idle_since = None
            time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datagen_core.llm.model_server", description=__doc__)
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--alias", required=True, help="the model name clients ask for")
    parser.add_argument("--state", required=True, help="JSON file where the status is published")
    parser.add_argument("--lease", required=True, help="file clients hold a shared lock on while they use it")
    parser.add_argument("--log", required=True, help="the server's output")
    parser.add_argument("--key", default="", help="what this server was started for (model, build, context)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--idle", type=float, default=600.0, help="stop after this many seconds without clients")
    return Supervisor(parser.parse_args(argv)).serve()


if __name__ == "__main__":
    sys.exit(main())
