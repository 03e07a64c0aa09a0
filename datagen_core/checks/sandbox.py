"""Run LLM-written Python in a separate, locked-down process and get back what it printed.

Why: the code-checked math module (SPEC §3) executes code an LLM wrote. The reference implementation
exec'd it in-process with no limits; here every job is a fresh `python -I -S -B` child that the
parent can always kill, and the result comes back only through stdout (the answer is its last line).

What a job gets, layer by layer (`SandboxResult.layers` says which ones were active for that job):

- **A separate process** in its own session / process group, started with an empty environment (no
  inherited secrets, no PATH), stdin at EOF, an empty temporary working directory that is deleted
  afterwards, and no site-packages (`-S`: the standard library only).
- **A wall-clock timeout** after which the whole process group is killed with SIGKILL; the group is
  killed again after every job, so nothing the code started outlives it.
- **rlimits** set by the bootstrap (`sandbox_child.py`) before any user code runs: RLIMIT_CPU (SIGXCPU, then SIGKILL),
  RLIMIT_AS (memory), RLIMIT_FSIZE (largest file), RLIMIT_NOFILE, RLIMIT_CORE = 0, RLIMIT_NPROC.
  RLIMIT_NPROC counts every process of the user and is not enforced for root, which is why process
  creation is also stopped by the two layers below.
- **A network namespace** (`unshare --net` as root, `unshare --user --map-root-user --net` otherwise,
  probed once): the code sees no interface but a down loopback, so even 127.0.0.1 is unreachable.
- **Kernel filters applied by the bootstrap** (Linux, through `prctl`/`syscall`, before user code):
  no_new_privs; a Landlock ruleset (kernel >= 5.13) that allows reading only the standard library and
  the system library directories (/lib, /usr/lib: extension modules load shared libraries), reading and
  writing only the working directory, creating no symlinks, devices or sockets, executing nothing,
  and (Landlock ABI >= 4/6) no TCP bind/connect and no signals to processes outside the sandbox; all
  capabilities dropped (a root parent does not make a root sandbox); and a seccomp filter (x86_64) that
  refuses fork/vfork/clone-without-CLONE_THREAD, execve, setsid/setpgid (so nothing can leave the
  process group), socket creation, raising rlimits, ptrace, mounts, module loading and friends. These
  hold even as root and cannot be undone by the code.
- **A CPython audit hook** (`sys.addaudithook`, cannot be removed once added): refuses `open` and
  the `os.*`/`shutil.*` path events outside the working directory (the standard library stays
  readable), process creation (`os.fork`, `os.exec`, `os.system`, `os.posix_spawn`,
  `subprocess.Popen`), `socket.*` and other network events, `ctypes`, imports of `socket`,
  `subprocess`, `multiprocessing`, `ctypes`, ... , changing rlimits, tracing and gc introspection. A
  refused event ends the process at once (the code cannot catch it) and the job's reason is
  `forbidden`. It also caps the number of files opened for writing; the parent caps the size of the
  working directory and of stdout.

What it does not defend against: a kernel exploit or a CPython memory-corruption bug (the audit hook
is not a boundary against code that corrupts the interpreter; the kernel layers still hold then);
reading the standard library and system library files; CPU contention (jobs share the machine's
cores); filling the disk quickly: the total size of the working directory is polled every 0.1 s, not
enforced by the kernel (RLIMIT_FSIZE bounds each file, the audit hook the number of files written);
UDP or unix sockets when neither the network namespace nor seccomp is available.
Without Landlock, seccomp or `unshare` (other kernels, architectures or containers) the job still
runs, with the layers that remain, and `layers` says so. It is meant for LLM-written arithmetic, not
as a security boundary against a determined attacker.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from datagen_core.checks import sandbox_child

REASONS = ("ok", "error", "timeout", "cpu_limit", "memory_limit", "file_limit", "disk_limit", "output_limit",
           "forbidden", "killed")

_STDERR_KEEP = 8192  # the tail of stderr (where a traceback ends) is what a report needs
_STATUS_KEEP = 65536
_SYSTEM_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")


@functools.cache
def _child_source() -> str:
    """The bootstrap's source, passed as `-c`: the child imports nothing from this package (no site-packages)."""
    return Path(sandbox_child.__file__).read_text(encoding="utf-8")



@dataclass(frozen=True)
class SandboxResult:
    """What one job did. `reason` is one of REASONS; `detail` says more (the refused event, the error)."""

    ok: bool
    reason: str
    stdout: str
    stderr: str
    exit_code: int | None
    signal: int | None
    seconds: float
    cpu_seconds: float = 0.0
    detail: str = ""
    layers: tuple[str, ...] = ()
    pid: int = 0

    @property
    def answer(self) -> str | None:
        """The last non-empty line the code printed: where the result of a computation is expected."""
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else None


@functools.cache
def _namespace_prefix() -> tuple[tuple[str, ...], str]:
    """The `unshare` prefix that gives a job its own empty network namespace here, if any does."""
    unshare, true = shutil.which("unshare"), shutil.which("true")
    if not sys.platform.startswith("linux") or unshare is None or true is None:
        return (), ""
    candidates = [((unshare, "--net", "--"), "netns")] if os.geteuid() == 0 else []
    candidates.append(((unshare, "--user", "--map-root-user", "--net", "--"), "userns+netns"))
    for prefix, name in candidates:
        try:
            probe = subprocess.run([*prefix, true], env={}, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return prefix, name
    return (), ""


@functools.cache
def _read_roots() -> tuple[str, ...]:
    """What the child may read: the directories its isolated interpreter imports from, and system libraries."""
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print('\\n'.join(sys.path))"],
                           env={}, capture_output=True, text=True, timeout=30, check=False)
    paths = [p for p in probe.stdout.splitlines() if p] if probe.returncode == 0 else []
    paths = paths or [sysconfig.get_paths()["stdlib"]]
    paths += [*_SYSTEM_LIBRARY_DIRS, "/etc/ld.so.cache"]
    roots: list[str] = []
    for path in paths:
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in roots:
            roots.append(real)
    return tuple(roots)


def _kill_group(pgid: int) -> None:
    """SIGKILL every process of the job's group; call it only while the leader is not reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _dir_usage(root: str, max_entries: int) -> tuple[int, int]:
    """Bytes and entries under `root`, stopping early once `max_entries` is passed."""
    total = entries = 0
    stack = [root]
    while stack and entries <= max_entries:
        try:
            with os.scandir(stack.pop()) as scan:
                for entry in scan:
                    entries += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total, entries


def _remove_tree(root: str) -> None:
    def retry(function: object, path: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
        with contextlib.suppress(OSError):
            (os.rmdir if os.path.isdir(path) and not os.path.islink(path) else os.unlink)(path)

    shutil.rmtree(root, onerror=retry)


def run_python(
    code: str,
    *,
    timeout_s: float = 5.0,
    cpu_s: int = 3,
    memory_mb: int = 256,
    max_processes: int = 1,
    max_file_mb: int = 1,
    max_disk_mb: int = 16,
    max_files: int = 64,
    max_output_kb: int = 256,
    network_namespace: bool = True,
    kernel_filters: bool = True,
    audit_hook: bool = True,
) -> SandboxResult:
    """Run `code` in a fresh sandboxed interpreter and wait for it (at most `timeout_s` seconds).

    `max_processes=1` means the code may not start any process (threads are fine). `network_namespace`,
    `kernel_filters` and `audit_hook` exist so tests can prove each layer on its own; leave them on.
    Blocking: call it from a worker thread (`asyncio.to_thread`) in async code.
    """
    started = time.monotonic()
    root = tempfile.mkdtemp(prefix="datagen-sandbox-")
    workdir = os.path.join(root, "work")
    os.mkdir(workdir, 0o700)
    code_path = os.path.join(root, "main.py")
    Path(code_path).write_text(code, encoding="utf-8", errors="surrogatepass")
    prefix, namespace = _namespace_prefix() if network_namespace else ((), "")
    status_r, status_w = os.pipe()
    config = {
        "status_fd": status_w, "code_path": code_path, "workdir": os.path.realpath(workdir),
        "read_roots": list(_read_roots()), "cpu_s": max(1, int(cpu_s)), "memory_bytes": int(memory_mb) << 20,
        "file_bytes": int(max_file_mb) << 20, "max_processes": max(1, int(max_processes)),
        "max_files": int(max_files), "kernel_filters": kernel_filters, "audit_hook": audit_hook,
    }
    argv = [*prefix, sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _child_source(), json.dumps(config)]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=workdir, env={}, start_new_session=True, pass_fds=(status_w,))
    except OSError as exc:
        os.close(status_r)
        os.close(status_w)
        _remove_tree(root)
        return SandboxResult(False, "error", "", "", None, None, time.monotonic() - started,
                             detail=f"could not start the sandbox: {exc}")
    os.close(status_w)
    try:
        return _supervise(proc, status_r, started, workdir, namespace, timeout_s=timeout_s, cpu_s=cpu_s,
                          max_disk=int(max_disk_mb) << 20, max_entries=max(16, 4 * int(max_files)),
                          max_output=int(max_output_kb) << 10)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        os.close(status_r)
        _remove_tree(root)


def _has_exited(pid: int) -> bool:
    """Whether the child has ended, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # someone else reaped it (a global os.wait() elsewhere in the process)
        return True


def _reap(pid: int) -> tuple[int, float]:
    """The wait status and CPU seconds of the ended child (status -1 when someone else reaped it)."""
    try:
        _, status, usage = os.wait4(pid, 0)
    except ChildProcessError:
        return -1, 0.0
    return status, usage.ru_utime + usage.ru_stime


def _supervise(proc: subprocess.Popen[bytes], status_r: int, started: float, workdir: str, namespace: str, *,
               timeout_s: float, cpu_s: float, max_disk: int, max_entries: int, max_output: int) -> SandboxResult:
    """Collect output under caps, enforce the deadline and the disk cap, reap the child, classify."""
    assert proc.stdout is not None and proc.stderr is not None
    pid = proc.pid
    deadline = started + timeout_s
    buffers = {"out": bytearray(), "err": bytearray(), "status": bytearray()}
    selector = selectors.DefaultSelector()
    for fd, name in ((proc.stdout.fileno(), "out"), (proc.stderr.fileno(), "err"), (status_r, "status")):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, name)
    killed: tuple[str, str] | None = None
    waited: tuple[int, float] | None = None
    exited_at = 0.0
    next_disk_check = 0.0
    try:
        while True:
            now = time.monotonic()
            if waited is None and _has_exited(pid):
                # the leader is a zombie, so its group id cannot be reused yet: kill what it left, then reap
                _kill_group(pid)
                waited, exited_at = _reap(pid), now
            if waited is not None and (not selector.get_map() or now - exited_at > 0.5):
                break
            if waited is None and killed is None:
                if now >= deadline:
                    killed = ("timeout", f"still running after {timeout_s:g} s")
                elif now >= next_disk_check:
                    next_disk_check = now + 0.1
                    used, entries = _dir_usage(workdir, max_entries)
                    if used > max_disk or entries > max_entries:
                        killed = ("disk_limit", f"the working directory grew past {max_disk >> 20} MB "
                                                f"or {max_entries} entries")
                if killed:
                    _kill_group(pid)
            for key, _ in selector.select(timeout=0.02):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = buffers[key.data]
                buffer += chunk
                if key.data == "err" and len(buffer) > 2 * _STDERR_KEEP:
                    del buffer[:-_STDERR_KEEP]
                elif key.data == "status" and len(buffer) > _STATUS_KEEP:
                    del buffer[_STATUS_KEEP:]
                elif key.data == "out" and len(buffer) > max_output and killed is None and waited is None:
                    killed = ("output_limit", f"printed more than {max_output >> 10} KiB")
                    _kill_group(pid)
    finally:
        selector.close()
        if waited is None:  # killed, or an error in this loop: the leader is not reaped yet, so this is safe
            _kill_group(pid)
            waited = _reap(pid)
    raw_status, cpu = waited
    exit_code: int | None = None
    signal_number: int | None = None
    if raw_status >= 0:
        exit_code = os.WEXITSTATUS(raw_status) if os.WIFEXITED(raw_status) else None
        signal_number = os.WTERMSIG(raw_status) if os.WIFSIGNALED(raw_status) else None
    proc.returncode = exit_code if exit_code is not None else -(signal_number or 0)
    stdout = buffers["out"][:max_output].decode("utf-8", "replace")
    stderr = buffers["err"][-_STDERR_KEEP:].decode("utf-8", "replace")
    notes = sandbox_child.parse_status(bytes(buffers["status"]))
    layers = ["process_group", "empty_env", "tempdir"] + ([namespace] if namespace else [])
    layers += [layer for layer in notes.get("layers", "").split(",") if layer]
    reason, detail = _classify(killed, notes, exit_code, signal_number, cpu, cpu_s, stderr)
    return SandboxResult(reason == "ok", reason, stdout, stderr, exit_code, signal_number,
                         round(time.monotonic() - started, 3), round(cpu, 3), detail, tuple(layers), pid)


def _classify(killed: tuple[str, str] | None, notes: dict[str, str], exit_code: int | None,
              signal_number: int | None, cpu: float, cpu_s: float, stderr: str) -> tuple[str, str]:
    """One reason per job, from the most specific evidence to the least."""
    if killed is not None:
        return killed
    for kind, reason in (("forbidden", "forbidden"), ("disk", "disk_limit"), ("memory", "memory_limit"),
                         ("file_size", "file_limit"), ("syntax", "error")):
        if kind in notes:
            return reason, notes[kind]
    if signal_number == signal.SIGXCPU or (signal_number == signal.SIGKILL and cpu >= cpu_s - 0.05):
        return "cpu_limit", f"used its {cpu_s:g} s of CPU time"
    if signal_number == signal.SIGXFSZ:
        return "file_limit", "a file grew past the size limit"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    if signal_number is not None:
        if "MemoryError" in stderr or "memory" in last.lower():
            return "memory_limit", last
        return "killed", f"terminated by {signal.Signals(signal_number).name}" + (f": {last}" if last else "")
    if exit_code:
        if last.startswith("MemoryError"):
            return "memory_limit", last
        return "error", last or f"exit code {exit_code}"
    if exit_code is None:
        return "error", "the job's exit status was lost (reaped elsewhere)"
    return "ok", ""


__all__ = ["REASONS", "SandboxResult", "run_python"]
