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
- **rlimits** set by the bootstrap before any user code runs: RLIMIT_CPU (SIGXCPU, then SIGKILL),
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

REASONS = ("ok", "error", "timeout", "cpu_limit", "memory_limit", "file_limit", "disk_limit", "output_limit",
           "forbidden", "killed")

_STDERR_KEEP = 8192  # the tail of stderr (where a traceback ends) is what a report needs
_STATUS_KEEP = 65536
_SYSTEM_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")

# The bootstrap runs first in the child: limits, kernel filters, the audit hook, then the user's code.
# It only uses the standard library and never calls a method of an object the user's code could have
# made, from inside the audit hook (exact str/bytes/int only), so the code cannot run inside the hook.
_BOOTSTRAP = r'''
import sys, posix

def _main():
    import builtins, errno, json, resource
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]
    _write, _exit = posix.write, posix._exit

    def report(kind, detail=""):
        line = kind + "\t" + detail.replace("\n", " ").replace("\t", " ")[:1000] + "\n"
        try:
            _write(status_fd, line.encode("utf-8", "replace"))
        except OSError:
            pass

    with open(cfg["code_path"], encoding="utf-8") as handle:
        source = handle.read()
    posix.chdir(cfg["workdir"])
    layers = []

    def limit(which, soft, hard=None):
        try:
            resource.setrlimit(which, (soft, soft if hard is None else hard))
            return True
        except (ValueError, OSError):
            return False

    ok = limit(resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1)
    ok &= limit(resource.RLIMIT_AS, cfg["memory_bytes"])
    ok &= limit(resource.RLIMIT_FSIZE, cfg["file_bytes"])
    ok &= limit(resource.RLIMIT_NOFILE, 32)
    ok &= limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NPROC, cfg["max_processes"])
    if ok:
        layers.append("rlimits")
    if cfg["kernel_filters"]:
        try:
            _kernel_filters(cfg, layers)
        except Exception as exc:  # the layers that did apply stay; say what failed
            report("note", "kernel filters: " + type(exc).__name__ + ": " + str(exc))
        for name in [n for n in sys.modules if n == "_ctypes" or n == "ctypes" or n.startswith("ctypes.")]:
            del sys.modules[name]  # a later `import ctypes` must go through the import machinery (refused)
    import traceback  # before the hook narrows what may be opened (it can read the stdlib anyway)
    if cfg["audit_hook"]:
        _install_hook(cfg, report)
        layers.append("audit_hook")
    report("layers", ",".join(layers))

    try:
        code = compile(source, "<sandbox>", "exec")
    except (SyntaxError, ValueError, MemoryError) as exc:
        report("syntax", type(exc).__name__ + ": " + str(exc))
        _exit(1)
    main = type(sys)("__main__")
    sys.modules["__main__"] = main
    sys.argv = ["<sandbox>"]
    status = 0
    try:
        exec(code, main.__dict__)
    except SystemExit as exc:
        if exc.code is None:
            status = 0
        elif type(exc.code) is int:
            status = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except MemoryError:
        report("memory", "MemoryError")
        _exit(1)
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
            report("file_size", "a file grew past the size limit")
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # without the bootstrap's frame
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    _exit(status)


def _kernel_filters(cfg, layers):
    """no_new_privs, Landlock, no capabilities, seccomp: irrevocable for this process and its children."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    prctl = libc.prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    machine = posix.uname().machine
    if prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return
    layers.append("no_new_privs")

    # ---- Landlock: syscalls 444-446 on every architecture
    abi = syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi >= 1:
        fs_all = (1 << 13) - 1
        if abi >= 2:
            fs_all |= 1 << 13  # REFER
        if abi >= 3:
            fs_all |= 1 << 14  # TRUNCATE
        if abi >= 5:
            fs_all |= 1 << 15  # IOCTL_DEV
        net_all = 3 if abi >= 4 else 0
        scoped = 3 if abi >= 6 else 0

        class RulesetAttr(ctypes.Structure):
            _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

        class PathBeneath(ctypes.Structure):
            _pack_ = 1
            _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

        size = 8 if abi < 4 else (16 if abi < 6 else 24)
        attr = RulesetAttr(fs_all, net_all, scoped)
        ruleset = syscall(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
        if ruleset >= 0:
            read_file, read_dir, write_file = 1 << 2, 1 << 3, 1 << 1
            workdir_rights = (read_file | read_dir | write_file | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8)
                              | (1 << 13) | (1 << 14)) & fs_all
            rules = [(p, read_file | read_dir, read_file) for p in cfg["read_roots"]]
            rules.append((cfg["workdir"], workdir_rights, workdir_rights))
            rules.append(("/dev/null", 0, read_file | write_file))
            for path, dir_rights, file_rights in rules:
                try:
                    fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
                except OSError:
                    continue
                rights = dir_rights if posix.stat(path).st_mode & 0o170000 == 0o040000 else file_rights
                rule = PathBeneath(rights & fs_all, fd)
                syscall(445, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0))
                posix.close(fd)
            if syscall(446, ruleset, ctypes.c_uint32(0)) == 0:
                layers.append(f"landlock_fs(abi={abi})")
                if net_all:
                    layers.append("landlock_tcp")
                if scoped:
                    layers.append("landlock_signal_scope")
            posix.close(ruleset)

    # ---- capabilities: empty bounding, ambient, effective, permitted and inheritable sets
    capset_nr = {"x86_64": 126, "aarch64": 91}.get(machine)
    if capset_nr is not None:
        for cap in range(64):
            prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (fails harmlessly without CAP_SETPCAP)
        prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        if syscall(capset_nr, header, data) == 0:
            layers.append("no_capabilities")

    # ---- seccomp (x86_64 only: its syscall numbers are the ones tested)
    if machine != "x86_64":
        return

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]

    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000

    def errno_(n):
        return 0x00050000 | n

    eperm, eagain, enosys = errno_(1), errno_(11), errno_(38)
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, 0xC000003E), (ret, 0, 0, kill), (ld, 0, 0, 0),
            (jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]
    denied = {59: eperm, 322: eperm, 112: eperm, 109: eperm, 435: enosys, 101: eperm, 160: eperm,
              41: eperm, 53: eperm, 200: eperm, 424: eperm, 272: eperm, 308: eperm, 165: eperm, 166: eperm,
              155: eperm, 161: eperm, 169: eperm, 175: eperm, 313: eperm, 176: eperm, 246: eperm, 320: eperm,
              321: eperm, 298: eperm, 323: eperm, 250: eperm, 248: eperm, 249: eperm, 425: eperm, 310: eperm,
              311: eperm, 167: eperm, 168: eperm, 163: eperm, 164: eperm, 227: eperm, 170: eperm, 171: eperm,
              172: eperm, 173: eperm, 303: eperm, 304: eperm, 428: eperm, 429: eperm, 430: eperm, 431: eperm,
              432: eperm, 433: eperm, 442: eperm}
    if cfg["max_processes"] <= 1:
        denied.update({57: eagain, 58: eagain})
        # clone: threads (CLONE_THREAD) yes, processes no
        prog += [(jeq, 0, 4, 56), (ld, 0, 0, 16), (jset, 0, 1, 0x10000), (ret, 0, 0, allow), (ret, 0, 0, eagain),
                 (ld, 0, 0, 0)]
    for nr, action in denied.items():
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, action)]
    own = posix.getpid()
    for nr in (62, 234, 129, 297):  # kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: only to itself
        prog += [(jeq, 0, 5, nr), (ld, 0, 0, 16), (jeq, 0, 1, own), (ret, 0, 0, allow), (ret, 0, 0, eperm),
                 (ld, 0, 0, 0)]
    # prlimit64: reading a limit yes, setting one no
    prog += [(jeq, 0, 6, 302), (ld, 0, 0, 32), (jeq, 0, 3, 0), (ld, 0, 0, 36), (jeq, 0, 1, 0), (ret, 0, 0, allow),
             (ret, 0, 0, eperm)]
    prog.append((ret, 0, 0, allow))
    array = (SockFilter * len(prog))(*[SockFilter(*op) for op in prog])
    fprog = SockFprog(len(prog), array)
    if prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        layers.append("seccomp")


def _install_hook(cfg, report):
    """The audit hook; every name it uses is bound here, so patching modules later changes nothing."""
    _lstat, _readlink, _getcwd, _getpid, _exit = posix.lstat, posix.readlink, posix.getcwd, posix.getpid, posix._exit
    workdir = cfg["workdir"]
    writable = (workdir, "/dev/null")
    readable = tuple(cfg["read_roots"]) + writable
    allow_fork = cfg["max_processes"] > 1
    max_writes = cfg["max_files"]
    writes = [0]
    write_flags = posix.O_WRONLY | posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_APPEND
    process_events = frozenset({"os.exec", "os.system", "os.posix_spawn", "os.spawn", "os.startfile",
                                "subprocess.Popen", "pty.spawn", "os.killpg"})
    fork_events = frozenset({"os.fork", "os.forkpty"})
    network_events = frozenset({"http.client.connect", "urllib.Request", "ftplib.connect", "smtplib.connect",
                                "poplib.connect", "imaplib.open", "nntplib.connect", "telnetlib.Telnet.open",
                                "webbrowser.open", "sqlite3.connect", "sqlite3.enable_load_extension",
                                "sqlite3.load_extension"})
    tamper_events = frozenset({"sys.addaudithook", "sys.settrace", "sys.setprofile", "gc.get_objects",
                               "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                               "resource.setrlimit", "resource.prlimit", "code.__new__", "os.chroot"})
    banned_imports = frozenset({"socket", "_socket", "ssl", "_ssl", "subprocess", "_posixsubprocess",
                                "multiprocessing", "_multiprocessing", "ctypes", "_ctypes", "pty", "asyncio",
                                "sqlite3", "_sqlite3", "dbm", "_dbm", "_gdbm", "urllib.request", "http",
                                "ftplib", "smtplib", "poplib", "imaplib", "nntplib", "telnetlib", "webbrowser",
                                "_xxsubinterpreters", "_testcapi", "_testinternalcapi", "_posixshmem"})
    # event -> (indexes of path arguments, index of its dir_fd or -1, writes?)
    path_events = {
        "os.listdir": ((0,), -1, False), "os.scandir": ((0,), -1, False), "os.chdir": ((0,), -1, False),
        "os.getxattr": ((0,), -1, False), "os.listxattr": ((0,), -1, False), "os.fwalk": ((0,), -1, False),
        "os.chmod": ((0,), 2, True), "os.chown": ((0,), 3, True), "os.mkdir": ((0,), 2, True),
        "os.remove": ((0,), 1, True), "os.rmdir": ((0,), 1, True), "os.rename": ((0, 1), 2, True),
        "os.replace": ((0, 1), 2, True), "os.truncate": ((0,), -1, True), "os.utime": ((0,), 3, True),
        "os.setxattr": ((0,), -1, True), "os.removexattr": ((0,), -1, True), "os.chflags": ((0,), -1, True),
        "os.lchflags": ((0,), -1, True), "shutil.copyfile": ((0,), -1, False), "shutil.copytree": ((0,), -1, False),
        "shutil.rmtree": ((0,), 1, True), "shutil.move": ((0, 1), -1, True), "shutil.chown": ((0,), -1, True),
        "shutil.unpack_archive": ((0, 1), -1, True), "shutil.make_archive": ((0,), -1, True),
    }
    forbidden_paths = frozenset({"os.symlink", "os.link"})

    def deny(what):
        report("forbidden", what)
        _exit(1)

    def resolve(path, dir_fd):
        """An absolute path with every symlink resolved, or None when it cannot be resolved safely."""
        if type(path) is bytes:
            path = bytes.decode(path, "utf-8", "surrogateescape")
        if type(path) is not str:
            return None
        if not path.startswith("/"):
            if dir_fd is None or (type(dir_fd) is int and dir_fd == -1):  # -1: the audit event's "no dir_fd"
                base = _getcwd()
            elif type(dir_fd) is int:
                try:
                    base = _readlink("/proc/self/fd/" + str(dir_fd))
                except OSError:
                    return None
            else:
                return None
            path = base + "/" + path
        todo = path.split("/")
        todo.reverse()
        done = []
        hops = 0
        while todo:
            part = todo.pop()
            if part == "" or part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join(done + [part])
            try:
                mode = _lstat(candidate).st_mode
            except OSError:
                done.append(part)
                continue
            if mode & 0o170000 == 0o120000:
                hops += 1
                if hops > 40:
                    return None
                target = _readlink(candidate).split("/")
                if target and target[0] == "":
                    done = []
                target.reverse()
                todo.extend(target)
            else:
                done.append(part)
        return "/" + "/".join(done)

    def inside(path, roots):
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return True
        return False

    def check_path(event, path, dir_fd, write):
        if path is None and event in ("os.listdir", "os.scandir"):
            path = "."
        if type(path) is int:
            return  # an already open descriptor: opening it was checked
        full = resolve(path, dir_fd)
        if full is None:
            deny(event + ": a path the sandbox cannot check")
        if not inside(full, writable if write else readable):
            deny(event + ": " + full + (" (write)" if write else ""))

    def hook(event, args):
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            write = False
            if mode is not None:
                if type(mode) is not str:
                    deny("open: an unusual mode")
                for c in "wax+":
                    if c in mode:
                        write = True
            if type(flags) is int and flags & write_flags:
                write = True
            check_path("open", path, None, write)
            if write and type(path) is not int:
                writes[0] += 1
                if writes[0] > max_writes:
                    report("disk", "more than " + str(max_writes) + " files opened for writing")
                    _exit(1)
        elif event == "import":
            name = args[0]
            if type(name) is not str:
                deny("import of a non-string name")
            top = name.partition(".")[0]
            if name in banned_imports or top in banned_imports:
                deny("import " + name)
        elif event in path_events:
            indexes, fd_index, write = path_events[event]
            dir_fd = args[fd_index] if fd_index >= 0 and fd_index < len(args) else None
            for i in indexes:
                if i < len(args):
                    check_path(event, args[i], dir_fd, write)
        elif event in fork_events:
            if not allow_fork:
                deny(event)
        elif event == "os.kill":
            target = args[0]
            if type(target) is not int or target != _getpid():
                deny("os.kill of another process")
        elif (event in process_events or event in network_events or event in tamper_events
              or event in forbidden_paths or event.startswith("socket.") or event.startswith("ctypes.")
              or event.startswith("ssl.")):
            deny(event)

    sys.addaudithook(hook)


_main()
'''


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
    argv = [*prefix, sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _BOOTSTRAP, json.dumps(config)]
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
    notes: dict[str, str] = {}
    for line in buffers["status"].decode("utf-8", "replace").splitlines():
        kind, _, detail = line.partition("\t")
        notes.setdefault(kind, detail)
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
