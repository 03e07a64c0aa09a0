"""The embedded model's runtime: a portable build, run out of process, whose crashes fail a run cleanly.

These use the real llama.cpp server with the shipped SmolLM2 GGUF. A native fault (SIGILL, SIGSEGV, SIGABRT, an
OOM kill) is produced the way the kernel delivers one, by sending the signal to the model's process, and must end
as a failed, resumable run with one line naming the signal, while this interpreter and the store carry on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datagen_core.config import LLMConfig, RunConfig, SamplingParams
from datagen_core.doctor import build_record, check_model, check_runtime, diagnose, last_report, usable
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.errors import LLMFatalError
from datagen_core.llm import LLM
from datagen_core.llm.embedded import MODEL_NAME, embedded_runtime, runtime_package_dir
from datagen_core.llm.model_server import describe_exit
from datagen_core.records import duplicate_key
from datagen_core.store import Store

from .conftest import make_project

pytestmark = pytest.mark.slow

LLM_CONFIG = LLMConfig(backend="embedded", max_in_flight=2)
RUN_SECONDS = 240


def test_the_runtime_runs_on_this_machine() -> None:
    """The first thing to fail on a machine the build does not suit: with a message, not a dead interpreter."""
    runtime = check_runtime()
    assert runtime.status == "ok", f"{runtime.detail} — fix: {runtime.fix}"
    model = check_model()
    assert model.status == "ok", f"{model.detail} — fix: {model.fix}"
    assert MODEL_NAME in model.detail and "tokens/s" in model.detail


def test_the_portable_build_has_no_amx_or_avx512_instructions() -> None:
    record = build_record()
    if "-DGGML_NATIVE=OFF" not in record.get("cmake_args", "") or "-DGGML_AVX512=OFF" not in record["cmake_args"]:
        pytest.skip(f"not the portable baseline build of scripts/setup.sh: {record or 'no build record'}")
    libraries = sorted((runtime_package_dir() / "lib").glob("*.so*"))
    assert any("ggml" in lib.name for lib in libraries), libraries
    forbidden = re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd|tileloaddt1|tilestored|tilezero|tilerelease|tdpb\w+)\b"
                           r"|%zmm\d|%k[1-7]\b")
    for library in libraries:
        listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                                 text=True, check=True).stdout
        found = sorted({m.group(0) for m in forbidden.finditer(listing)})
        assert not found, f"{library.name} uses AMX / AVX-512: {found[:10]}"
        if "ggml-cpu" in library.name:  # the kernels are vectorised with the baseline's AVX2 and FMA
            assert "%ymm" in listing and re.search(r"\bvfmadd\w+", listing)


def test_the_doctor_reports_every_check(tmp_path: Path) -> None:
    report = diagnose(tmp_path / "home", skip=frozenset({"embedder", "model"}))
    assert last_report() == report  # what the Project page shows
    findings = {f.name: f for f in report.findings}
    assert set(findings) == {"python", "cpu", "runtime", "home", "chromium"}
    assert findings["home"].status == "ok" and findings["python"].status == "ok"
    assert "uses" in findings["runtime"].detail and "AVX2" in findings["runtime"].detail
    blocked = tmp_path / "file"
    blocked.write_text("")
    from datagen_core.doctor import check_home

    bad = check_home(blocked / "home")
    assert bad.status == "fail" and "DATAGEN_HOME" in bad.fix


def test_cpu_features_need_the_kernel_to_enable_their_state() -> None:
    flags = {"avx", "avx2", "avx512f", "amx_int8"}
    the_reported_machine = 0x202E7  # AVX-512 state enabled, AMX tile data (bit 18) not
    assert usable("AVX2", flags, the_reported_machine) and usable("AVX512", flags, the_reported_machine)
    assert not usable("AMX_INT8", flags, the_reported_machine)
    assert not usable("AVX512", flags, 0x7) and not usable("FMA", flags, the_reported_machine)  # no fma flag


def test_exits_are_described_by_their_signal() -> None:
    assert describe_exit(-signal.SIGILL).startswith("killed by SIGILL (illegal instruction")
    assert "segmentation fault" in describe_exit(-signal.SIGSEGV)
    assert "out of memory" in describe_exit(-signal.SIGKILL)
    assert describe_exit(3) == "exited with code 3"


def test_the_model_is_shared_by_the_processes_of_the_machine() -> None:
    runtime = embedded_runtime()
    runtime.ensure()
    pid = runtime.server_pid()
    code = ("from datagen_core.llm.embedded import embedded_runtime as r; "
            "print(r().ensure(), r().server_pid())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    url, other_pid = other.stdout.split()
    assert int(other_pid) == pid and url == runtime.running()["base_url"]  # type: ignore[index]


async def _one_answer(llm: LLM, max_tokens: int = 40) -> str:
    completion = await llm.complete([{"role": "user", "content": "Write a long story about rain."}],
                                    sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens), purpose="test")
    return completion.text


def _kill_server(sig: signal.Signals) -> int:
    pid = embedded_runtime().server_pid()
    assert pid is not None
    os.kill(pid, sig)
    return pid


@pytest.mark.parametrize("sig", [signal.SIGILL, signal.SIGABRT])
def test_a_native_fault_is_one_line_naming_the_signal(sig: signal.Signals) -> None:
    import asyncio

    embedded_runtime().ensure()
    llm = LLM.from_config(LLM_CONFIG, None, use_cache=False)

    async def scenario() -> str:
        for _ in range(5):  # kill while a request is being decoded (an answer may end before the kill)
            first = asyncio.create_task(_one_answer(llm, max_tokens=400))
            await asyncio.sleep(0.3)
            if not first.done():
                break
        _kill_server(sig)
        with pytest.raises(LLMFatalError) as failure:
            await first
        message = str(failure.value)
        assert "\n" not in message and f"killed by {sig.name}" in message and "--resume" in message
        return await _one_answer(llm)  # the next request starts a new server

    assert asyncio.run(scenario()).strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, per_label=6)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_killed_model_fails_the_run_and_resume_completes(project: Path, embedder: Embedder,
                                                           sig: signal.Signals) -> None:
    target = 4
    with Store.open(project) as store:
        config = RunConfig(per_label=target, seed=5, labels=("HUM", "LOC"), sampling=LLM_CONFIG.default_sampling(),
                           worked_example=True, use_cache=False)
        run_id = start_run(store, config, LLM_CONFIG)
        embedded_runtime().ensure()
        killed: list[int] = []

        def kill_after_first_offspring() -> None:
            deadline = time.monotonic() + RUN_SECONDS
            while time.monotonic() < deadline and not killed:
                if sum(store.kept_counts(run_id).values()) >= 1:
                    killed.append(_kill_server(sig))
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_after_first_offspring)
        killer.start()
        with pytest.raises(LLMFatalError, match=f"killed by {sig.name}"):  # the CLI prints it as one line
            run_generation(store, LLM_CONFIG, run_id, embedder=embedder)
        killer.join()
        assert killed, "no offspring landed before the deadline"
        run = store.run(run_id)
        assert run.status == "failed"
        assert run.error is not None and f"killed by {sig.name}" in run.error and "\n" not in run.error
        kept_before = store.samples(run_id=run_id)
        assert 1 <= len(kept_before) < 2 * target  # what was committed before the crash is there

        resumed = run_generation(store, LLM_CONFIG, run_id, embedder=embedder)
        assert resumed.status == "completed", store.run(run_id).error
        assert store.kept_counts(run_id) == {"HUM": target, "LOC": target}
        after = store.samples(run_id=run_id)
        assert set(kept_before["id"]) <= set(after["id"])  # nothing committed was lost
        keys = [duplicate_key(t) for t in after["text"]]
        assert len(keys) == len(set(keys))
        assert embedded_runtime().server_pid() not in killed  # a new model process answered the resume
        events = store.cursor().execute("SELECT kind, message FROM events WHERE run_id = ?", [run_id]).fetchall()
        assert any(f"killed by {sig.name}" in str(message) for _, message in events), json.dumps(events)[:500]


def test_the_model_server_ignores_the_studios_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """`HOST=0.0.0.0 PORT=8080 bash scripts/start.sh` is for the studio; llama_cpp.server reads the same variables."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        for name, value in {"HOST": "0.0.0.0", "PORT": str(port), "API_KEY": "secret", "N_CTX": "64"}.items():
            monkeypatch.setenv(name, value)
        runtime = embedded_runtime()
        runtime.stop()
        state = runtime.running() or {"base_url": runtime.ensure(), **(runtime.running() or {})}
        assert state["port"] != port
        listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
        local = {line.split()[1] for line in listening if line.split()[3] == "0A"}  # state LISTEN
        assert f"0100007F:{state['port']:04X}" in local and f"00000000:{state['port']:04X}" not in local
    import asyncio

    llm = LLM.from_config(LLM_CONFIG, None, use_cache=False)
    assert asyncio.run(_one_answer(llm)).strip()  # no key asked, the full context (N_CTX ignored)


def test_the_installed_runtime_is_the_keyed_build() -> None:
    """scripts/setup.sh's marker: the key of the wheel it installed and a hash of the libraries it put there."""
    import hashlib

    marker = Path(sys.prefix) / "llama-build-key"
    if not marker.exists():
        pytest.skip("the runtime was not installed by scripts/setup.sh")
    key, installed = marker.read_text().split()
    files = sorted(p for p in (runtime_package_dir() / "lib").glob("*.so*") if not p.is_symlink())
    assert hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest() == installed, \
        "the installed llama-cpp-python is not the build scripts/setup.sh recorded: run it again"
    assert len(key) == 16 and build_record()["cmake_args"]


def test_an_unused_server_stops_after_its_idle_time(tmp_path: Path) -> None:
    env = {**os.environ, "DATAGEN_RUNTIME_DIR": str(tmp_path), "DATAGEN_EMBEDDED_IDLE": "2"}
    code = "from datagen_core.llm.embedded import embedded_runtime as r; r().ensure(); print(r().state_path)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          check=True)
    state_path = Path(done.stdout.strip())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the client exited: nobody holds the lease any more
        state = json.loads(state_path.read_text())
        if state["status"] != "ready":
            break
        time.sleep(0.2)
    assert state["status"] == "stopped" and state["reason"] == "idle for 2 s", state
