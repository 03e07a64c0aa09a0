"""Run LLM-written Python in a separate, locked-down process and get back what it printed.

Why: the code-checked math module (SPEC §3) executes code an LLM wrote. The reference implementation
exec'd it in-process with no limits; here every job is a fresh child that the parent can always kill, and
the result comes back only through stdout (the answer is its last line). docs/sandbox.md has the details.

What a job gets, layer by layer (`SandboxResult.layers` names the ones that were active for that job):

- **A separate process** in its own session / process group, started with an empty environment (no inherited
  secrets, no PATH), stdin at EOF, no inherited descriptor but its pipes, an empty temporary working directory
  that is deleted afterwards, and no site-packages (`-I -S`: the standard library only).
- **A wall-clock timeout** after which the whole process group is killed with SIGKILL; the group is killed
  again after every job, so nothing the code started outlives it.
- **Stage 1** of the bootstrap (`sandbox_child.py`) then, before any user code exists in the process:
  new user (when not root), mount, network, IPC and UTS namespaces; an **empty root**: a read-only tmpfs
  holding only the interpreter, its libraries, the standard library, /etc/ld.so.cache, /dev/null and the
  working directory (bind mounts, read-only but that one), entered with pivot_root, so every other path does
  not exist (`os.stat('/etc/shadow')`, `/proc`, `/home` ...); as root, uid/gid 65534 with no groups; rlimits
  (CPU, address space, file size, 32 open files, no core, tasks); no_new_privs; a Landlock ruleset when the
  kernel has one (optional, >= 5.13: it repeats the mount layout's rules); no capabilities; and a seccomp
  filter (x86_64) that refuses process creation (threads are fine), execve, setsid/setpgid, sockets,
  memfd_create and SysV shared memory (memory outside RLIMIT_AS), raising rlimits, ptrace, mounts,
  namespaces, module loading, bpf, io_uring, keyrings and friends, and signals to other processes.
- **Stage 2**: stage 1 execs a fresh interpreter (ctypes, which stage 1 needed, is never loaded in it) that
  installs a **CPython audit hook** (cannot be removed once added; every name it uses is bound at install
  time): it refuses `open` and the `os.*`/`shutil.*` path events outside the working directory (the standard
  library stays readable), process creation, sockets and other network events, `ctypes`, imports of `socket`,
  `subprocess`, `multiprocessing`, `ctypes`, ..., changing rlimits, tracing and gc introspection. A refused
  event ends the process at once (the code cannot catch it) and the job's reason is `forbidden`. It also caps
  the number of files opened for writing; the parent caps the size of the working directory and of stdout.

Fail closed: if a layer that is not optional cannot be installed (no user namespaces, a root that cannot be
pivoted, another architecture...), no code runs and the job's reason is `unavailable`, with the failing step in
one line as its detail. The kernel layers hold against code that defeats the audit hook (ctypes, a CPython bug).

What it does not defend against: a kernel exploit; reading the files of the empty root (the interpreter, the
standard library, the system libraries); CPU contention (jobs share the machine's cores); filling the disk
quickly (the working directory's total size is polled every 0.1 s, RLIMIT_FSIZE bounds each file, the audit
hook the number of files written). It is meant for LLM-written arithmetic, as defence in depth.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import os
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from datagen_core.checks import sandbox_child

REASONS = ("ok", "error", "timeout", "cpu_limit", "memory_limit", "file_limit", "disk_limit", "output_limit",
           "forbidden", "killed", "unavailable")

_STDERR_KEEP = 8192  # the tail of stderr (where a traceback ends) is what a report needs
_STATUS_KEEP = 65536
_SYSTEM_LIBRARY_DIRS = ("/usr/lib", "/usr/lib64", "/lib", "/lib64")  # /usr first: /lib is often a link to it
_BINDS = ("ro", "rw", "dev")


@functools.cache
def _bootstrap() -> str:
    """The bootstrap's code, compiled once and marshalled: the child imports nothing from this package."""
    source = Path(sandbox_child.__file__).read_text(encoding="utf-8")
    return marshal.dumps(compile(source, "<sandbox-bootstrap>", "exec", dont_inherit=True)).hex()


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


@dataclass(frozen=True)
class _Layout:
    """What every job's empty root holds; the same for all jobs of this parent, so computed once."""

    interpreter: str
    mounts: tuple[tuple[str, ...], ...]  # ("dir", path) | ("link", path, target) | (bind kind, path), in order
    read_roots: tuple[str, ...]
    exec_files: tuple[str, ...]


def _elf_interpreter(path: str) -> str | None:
    """The loader an ELF64 little-endian executable names (PT_INTERP): exec opens it as well."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return None
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
        for i in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
            if p_type == 3:
                handle.seek(p_offset)
                return handle.read(p_filesz).rstrip(b"\0").decode()
    return None


def _expose(name: str, kind: str, mounts: dict[str, tuple[str, ...]]) -> None:
    """Plan what makes `name` resolve in the empty root as on the host: its directories and symlinks, then a bind
    mount of what it names. Nothing when it does not exist or lies inside something already bound."""
    todo = [part for part in reversed(name.split("/")) if part not in ("", ".")]
    done = ""
    hops = 0
    while todo:
        part = todo.pop()
        if part == "..":
            done = done.rpartition("/")[0]
            continue
        path = done + "/" + part
        if any(op[0] in _BINDS and (path == bound or path.startswith(bound + "/")) for bound, op in mounts.items()):
            return
        try:
            info = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(info.st_mode):
            hops += 1
            target = os.readlink(path)
            if hops > 40:
                return
            mounts.setdefault(path, ("link", path, target))
            if target.startswith("/"):
                done = ""
            todo += [p for p in reversed(target.split("/")) if p not in ("", ".")]
        elif todo:
            if not stat.S_ISDIR(info.st_mode):
                return
            mounts.setdefault(path, ("dir", path))
            done = path
        else:
            mounts[path] = (kind, path)  # replaces a "dir" planned earlier; what lies under it is pruned


def _pruned(mounts: dict[str, tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """The plan in order, without what lies under a bind mount (the bind shows the host's own)."""
    binds = [path for path, op in mounts.items() if op[0] in _BINDS]
    return tuple(op for path, op in mounts.items()
                 if not any(path.startswith(bound + "/") for bound in binds))


@functools.cache
def _layout() -> _Layout:
    """The interpreter the jobs run (the real one behind a venv), and the files it needs to start and import."""
    interpreter = os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    probe = subprocess.run([interpreter, "-I", "-S", "-c", "import sys; print('\\n'.join(sys.path))"],
                           env={}, capture_output=True, text=True, timeout=30, check=False)
    search_path = [p for p in probe.stdout.splitlines() if p] if probe.returncode == 0 else []
    loader = _elf_interpreter(interpreter)
    names = [*_SYSTEM_LIBRARY_DIRS, "/etc/ld.so.cache", interpreter, *([loader] if loader else [])]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        names.append(os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")))
    names += search_path or [sysconfig.get_paths()["stdlib"]]
    mounts: dict[str, tuple[str, ...]] = {}
    for name in names:
        _expose(name, "ro", mounts)
    _expose("/dev/null", "dev", mounts)
    plan = _pruned(mounts)
    read_roots = tuple(op[1] for op in plan if op[0] == "ro")
    exec_files = tuple(dict.fromkeys(os.path.realpath(p) for p in (interpreter, loader) if p))
    return _Layout(interpreter, plan, read_roots, exec_files)


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
    namespaces: bool = True,
    kernel_filters: bool = True,
    audit_hook: bool = True,
) -> SandboxResult:
    """Run `code` in a fresh sandboxed interpreter and wait for it (at most `timeout_s` seconds).

    `max_processes=1` means the code may not start any process (threads are fine). `namespaces` (with the empty
    root), `kernel_filters` and `audit_hook` exist so tests can prove each layer on its own; leave them on.
    Blocking: call it from a worker thread (`asyncio.to_thread`) in async code.
    """
    started = time.monotonic()
    layout = _layout()
    root = tempfile.mkdtemp(prefix="datagen-sandbox-")
    workdir = os.path.realpath(os.path.join(root, "work"))
    os.mkdir(workdir, 0o700)
    os.mkdir(os.path.join(root, "fs"), 0o700)  # where stage 1 mounts the empty root, in its own mount namespace
    if namespaces and os.geteuid() == 0:
        os.chown(workdir, sandbox_child.NOBODY, sandbox_child.NOBODY)  # the job runs as nobody
    code_path = os.path.join(root, "main.py")
    Path(code_path).write_text(code, encoding="utf-8", errors="surrogatepass")
    plan = {op[1]: op for op in layout.mounts}
    _expose(workdir, "rw", plan)
    code_fd = os.open(code_path, os.O_RDONLY | os.O_CLOEXEC)
    status_r, status_w = os.pipe()
    config = {
        "stage": 1, "status_fd": status_w, "code_fd": code_fd, "workdir": workdir,
        "new_root": os.path.join(os.path.realpath(root), "fs"), "mounts": list(plan.values()),
        "interpreter": layout.interpreter, "read_roots": list(layout.read_roots),
        "exec_files": list(layout.exec_files), "cpu_s": max(1, int(cpu_s)), "memory_bytes": int(memory_mb) << 20,
        "file_bytes": int(max_file_mb) << 20, "max_processes": max(1, int(max_processes)),
        "max_files": int(max_files), "namespaces": namespaces, "kernel_filters": kernel_filters,
        "audit_hook": audit_hook,
    }
    argv = [layout.interpreter, "-I", "-S", "-B", "-X", "utf8", "-c", sandbox_child.LAUNCHER, _bootstrap(),
            marshal.dumps(config).hex()]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=workdir, env={}, start_new_session=True, pass_fds=(status_w, code_fd))
    except OSError as exc:
        for fd in (status_r, status_w, code_fd):
            os.close(fd)
        _remove_tree(root)
        return SandboxResult(False, "unavailable", "", "", None, None, time.monotonic() - started,
                             detail=f"could not start the sandbox: {exc}")
    os.close(status_w)
    os.close(code_fd)
    try:
        return _supervise(proc, status_r, started, workdir, timeout_s=timeout_s, cpu_s=cpu_s,
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


def _supervise(proc: subprocess.Popen[bytes], status_r: int, started: float, workdir: str, *,
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
    try:  # readable once the child has exited: wakes the loop at once instead of at its next poll
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    else:
        selector.register(pidfd, selectors.EVENT_READ, "exit")
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
                if key.data == "exit":
                    selector.unregister(key.fd)
                    continue
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
        if pidfd >= 0:
            os.close(pidfd)
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
    layers = ["process_group", "empty_env", "tempdir"]
    layers += [layer for layer in notes.get("layers", "").split(",") if layer]
    reason, detail = _classify(killed, notes, exit_code, signal_number, cpu, cpu_s, stderr)
    return SandboxResult(reason == "ok", reason, stdout, stderr, exit_code, signal_number,
                         round(time.monotonic() - started, 3), round(cpu, 3), detail, tuple(layers), pid)


def _classify(killed: tuple[str, str] | None, notes: dict[str, str], exit_code: int | None,
              signal_number: int | None, cpu: float, cpu_s: float, stderr: str) -> tuple[str, str]:
    """One reason per job, from the most specific evidence to the least."""
    if killed is not None:
        return killed
    for kind, reason in (("unavailable", "unavailable"), ("forbidden", "forbidden"), ("disk", "disk_limit"),
                         ("memory", "memory_limit"), ("file_size", "file_limit"), ("syntax", "error")):
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
