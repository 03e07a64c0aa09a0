"""The sandbox child's bootstrap: what runs first in the isolated interpreter, before the user's code.

Why a module of its own: it is code like any other (linted, imported by a test), while the child runs it exactly
as before, as `python -I -S -B -X utf8 -c <this file's source> <config json>` (see `sandbox.run_python`). So it
imports only the standard library, at the top only `sys` and `posix` (`__future__` is a compiler directive);
everything else is imported inside `_main`, before the audit hook is installed. The parent and the tests import
it only for the two functions of the status pipe (`status_line`, `parse_status`); importing it runs nothing.

It never calls a method of an object the user's code could have made from inside the audit hook (exact
str/bytes/int only), and every module function the hook uses is bound when it is installed, so the code cannot
run inside the hook, and patching modules later changes nothing.
"""

from __future__ import annotations

import posix
import sys

TYPE_CHECKING = False  # no `typing` import in the child: its modules would load before the hook
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def status_line(kind: str, detail: str = "") -> bytes:
    """One report on the status pipe: `kind<TAB>detail<LF>`, the detail on one line and at most 1,000 characters.

    Called from inside the audit hook, so it uses only methods of exact str (no globals, no builtins).
    """
    return (kind + "\t" + detail.replace("\n", " ").replace("\t", " ")[:1000] + "\n").encode("utf-8", "replace")


def parse_status(raw: bytes) -> dict[str, str]:
    """The parent's reading of the status pipe: the first detail of each kind (a kind may be reported again)."""
    notes: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        kind, _, detail = line.partition("\t")
        notes.setdefault(kind, detail)
    return notes


def _main() -> None:
    """Limits, kernel filters and the audit hook, in that order, then the user's code as `__main__`."""
    import errno
    import json
    import resource

    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]
    _write, _exit, encode = posix.write, posix._exit, status_line  # bound now: the hook calls report()

    def report(kind: str, detail: str = "") -> None:
        try:  # noqa: SIM105 - no contextlib: report() runs inside the audit hook, which looks up no module
            _write(status_fd, encode(kind, detail))
        except OSError:
            pass

    with open(cfg["code_path"], encoding="utf-8") as handle:
        source = handle.read()
    posix.chdir(cfg["workdir"])
    layers = []

    def limit(which: int, soft: int, hard: int | None = None) -> bool:
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
        code = compile(source, "<sandbox>", "exec", dont_inherit=True)  # not this file's `__future__` flags
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
        try:  # noqa: SIM105 - the same few names as everywhere in the child, no contextlib
            stream.flush()
        except BaseException:
            pass
    _exit(status)


def _kernel_filters(cfg: dict[str, Any], layers: list[str]) -> None:
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

    def errno_(n: int) -> int:
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


def _install_hook(cfg: dict[str, Any], report: Callable[[str, str], None]) -> None:
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

    def deny(what: str) -> None:
        report("forbidden", what)
        _exit(1)

    def resolve(path: object, dir_fd: object) -> str | None:
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
            candidate = "/" + "/".join([*done, part])
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

    def inside(path: str, roots: tuple[str, ...]) -> bool:
        for root in roots:  # noqa: SIM110 - any() is one more builtin the hook would look up
            if path == root or path.startswith(root + "/"):
                return True
        return False

    def check_path(event: str, path: object, dir_fd: object, write: bool) -> None:
        if path is None and event in ("os.listdir", "os.scandir"):
            path = "."
        if type(path) is int:
            return  # an already open descriptor: opening it was checked
        full = resolve(path, dir_fd)
        if full is None:
            deny(event + ": a path the sandbox cannot check")
        if not inside(full, writable if write else readable):
            deny(event + ": " + full + (" (write)" if write else ""))

    def hook(event: str, args: tuple[object, ...]) -> None:
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


if __name__ == "__main__":  # the child: `python -I -S -B -c <this source> <config>`
    _main()
