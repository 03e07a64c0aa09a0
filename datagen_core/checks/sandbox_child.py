"""The sandbox child's bootstrap: what runs in the isolated interpreter before the user's code, in two stages.

Why a module of its own: it is code like any other (linted, imported by a test), while the child runs it as
`python -I -S -B -X utf8 -c LAUNCHER <this module's code> <config>`, both marshalled and hex-encoded by the
parent (see `sandbox.run_python`): neither stage compiles the bootstrap or imports json (and re) to read its
config. So it imports only the standard library, at the top only `sys` and `posix` (`__future__` is a compiler
directive). The parent and the tests import it for the status pipe's two functions (`status_line`,
`parse_status`) and to inspect the hook; importing it runs nothing.

Why two stages: installing the kernel layers needs `ctypes` (unshare, mount, pivot_root, prctl, seccomp), and a
process that once imported ctypes keeps its classes reachable forever (`object.__subclasses__()`). So stage 1
builds the jail and then execs a fresh interpreter, stage 2, which never loads ctypes, installs the audit hook
and runs the code. Every layer stage 1 installs survives the exec and cannot be undone by the code.

Stage 2 never calls a method of an object the user's code could have made from inside the audit hook (exact
str/bytes/int/tuple only), and every function and builtin the hook uses is bound when it is installed, so
rebinding builtins or patching modules later changes nothing and no user code runs inside the hook.
"""

from __future__ import annotations

import posix
import sys

TYPE_CHECKING = False  # no `typing` import in the child: its modules would load before the hook
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

LAUNCHER = "import marshal, sys; exec(marshal.loads(bytes.fromhex(sys.argv[1])))"
NOBODY = 65534  # the uid and gid a job runs as when the parent is root
_TASKS_PER_PROCESS = 64  # RLIMIT_NPROC counts threads too; the job's own user namespace counts only the job
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWNET = (
    0x20000, 0x4000000, 0x8000000, 0x10000000, 0x40000000)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_NOATIME, _MS_NODIRATIME, _MS_BIND, _MS_REC, _MS_PRIVATE = 1024, 2048, 4096, 16384, 1 << 18
_MS_STRICTATIME = 1 << 24
_ST_RELATIME = 4096  # statvfs f_flag: the source's atime mode must be kept (it is locked in a user namespace)
_AT_EMPTY_PATH = 0x1000


def status_line(kind: str, detail: str = "") -> bytes:
    """One report on the status pipe: `kind<TAB>detail<LF>`, the detail on one line and at most 1,000 characters."""
    return (kind + "\t" + detail.replace("\n", " ").replace("\t", " ")[:1000] + "\n").encode("utf-8", "replace")


def parse_status(raw: bytes) -> dict[str, str]:
    """The parent's reading of the status pipe: the first detail of each kind (a kind may be reported again)."""
    notes: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        kind, _, detail = line.partition("\t")
        notes.setdefault(kind, detail)
    return notes


def _reporter(status_fd: int) -> Callable[[str, str], None]:
    """A fresh `report(kind, detail)` that uses only names bound here (the hook gets its own, unreachable one)."""
    _write, _replace, _encode, _OSError = posix.write, str.replace, str.encode, OSError

    def report(kind: str, detail: str = "") -> None:
        line = kind + "\t" + _replace(_replace(detail, "\n", " "), "\t", " ")[:1000] + "\n"
        try:  # noqa: SIM105 - no contextlib: this runs inside the audit hook
            _write(status_fd, _encode(line, "utf-8", "replace"))
        except _OSError:
            pass

    return report


def _main() -> None:
    import marshal

    cfg = marshal.loads(bytes.fromhex(sys.argv[2]))
    if cfg["stage"] == 1:
        _setup(cfg)
    else:
        _run(cfg)


# ------------------------------------------------------------------------------------------------ stage 1
def _setup(cfg: dict[str, Any]) -> None:
    """Namespaces and an empty root, rlimits, kernel filters, then exec stage 2; any failure refuses the job."""
    report = _reporter(cfg["status_fd"])
    layers: list[str] = []
    try:
        import ctypes
        import marshal

        libc = ctypes.CDLL(None, use_errno=True)

        def call(result: int, what: str) -> None:
            if result < 0:
                err = ctypes.get_errno()
                raise OSError(err, what + ": " + posix.strerror(err))

        if cfg["namespaces"]:
            _isolate(cfg, libc, call, layers)
        posix.chdir(cfg["workdir"])
        exec_fd = posix.open(cfg["interpreter"], posix.O_PATH | posix.O_CLOEXEC)
        _limits(cfg, layers)
        if cfg["kernel_filters"]:
            _kernel_filters(cfg, libc, call, exec_fd, layers)
        keep = ("status_fd", "code_fd", "workdir", "read_roots", "max_processes", "max_files", "audit_hook")
        stage2 = {**{key: cfg[key] for key in keep}, "stage": 2, "layers": [*layers, "fresh_interpreter"]}
        argv = [cfg["interpreter"], "-I", "-S", "-B", "-X", "utf8", "-c", LAUNCHER, sys.argv[1],
                marshal.dumps(stage2).hex()]
        posix.execve(exec_fd, argv, {})
    except Exception as exc:  # fail closed: no layer missing silently, no code run
        report("unavailable", (str(exc) or type(exc).__name__) + " [with " + (",".join(layers) or "no layer") + "]")
    posix._exit(1)


def _isolate(cfg: dict[str, Any], libc: Any, call: Callable[[int, str], None], layers: list[str]) -> None:
    """New user (unless root), mount, network, IPC and UTS namespaces; a root holding only what `mounts` lists.

    As root, the job then becomes uid/gid 65534 with no groups (the parent made the working directory its own).
    """
    import ctypes

    as_root = posix.geteuid() == 0
    uid, gid = posix.getuid(), posix.getgid()
    flags = _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    call(libc.unshare(flags if as_root else flags | _CLONE_NEWUSER), "unshare")
    if not as_root:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            fd = posix.open("/proc/self/" + name, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, text.encode())
            finally:
                posix.close(fd)
        layers.append("userns")
    layers += ["netns", "ipcns", "utsns"]
    call(libc.sethostname(b"sandbox", ctypes.c_size_t(7)), "sethostname")
    mount = libc.mount
    mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    call(mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making the mounts private")
    new_root = cfg["new_root"]
    call(mount(b"tmpfs", new_root.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=64k,nr_inodes=1024,mode=0755"),
         "mounting the empty root")
    for op in cfg["mounts"]:
        kind, path = op[0], op[1]
        target = new_root + path
        if kind == "dir":
            posix.mkdir(target, 0o755)
        elif kind == "link":
            posix.symlink(op[2], target)
        else:  # a bind: "ro" (libraries), "rw" (the working directory), "dev" (/dev/null)
            info = posix.stat(path)
            if info.st_mode & 0o170000 == 0o040000:
                posix.mkdir(target, 0o755)
            else:
                posix.close(posix.open(target, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o644))
            call(mount(path.encode(), target.encode(), None, _MS_BIND | _MS_REC, None), "bind-mounting " + path)
            source = posix.statvfs(path).f_flag
            flags = _MS_REMOUNT | _MS_BIND | _MS_NOSUID | (source & (_MS_RDONLY | _MS_NODEV | _MS_NOEXEC))
            flags |= source & (_MS_NOATIME | _MS_NODIRATIME)
            if not source & (_ST_RELATIME | _MS_NOATIME):
                flags |= _MS_STRICTATIME
            flags |= {"ro": _MS_RDONLY | _MS_NODEV, "rw": _MS_NODEV | _MS_NOEXEC, "dev": _MS_RDONLY}[kind]
            call(mount(None, target.encode(), None, flags, None), "making " + path + " " + kind)
    posix.chdir(new_root)
    call(libc.syscall(155, b".", b"."), "pivot_root")  # the old root now lies on top of the new one: detach it
    call(libc.umount2(b".", 2), "detaching the old root")  # MNT_DETACH
    posix.chdir("/")
    call(mount(None, b"/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None),
         "making the root read-only")
    layers.append("empty_root")
    if as_root:
        posix.setgroups([])
        posix.setresgid(NOBODY, NOBODY, NOBODY)
        posix.setresuid(NOBODY, NOBODY, NOBODY)
        layers.append("uid_nobody")
        if libc.unshare(_CLONE_NEWUSER) == 0:  # optional: counts RLIMIT_NPROC per job, not for all of uid 65534
            layers.append("userns")


def _limits(cfg: dict[str, Any], layers: list[str]) -> None:
    """rlimits, never above what the parent had: CPU, memory, file size, open files, no core, tasks."""
    import resource

    wanted = ((resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1),
              (resource.RLIMIT_AS, cfg["memory_bytes"], cfg["memory_bytes"]),
              (resource.RLIMIT_FSIZE, cfg["file_bytes"], cfg["file_bytes"]),
              (resource.RLIMIT_NOFILE, 32, 32), (resource.RLIMIT_CORE, 0, 0),
              (resource.RLIMIT_NPROC, cfg["max_processes"] * _TASKS_PER_PROCESS,
               cfg["max_processes"] * _TASKS_PER_PROCESS))
    for which, soft, hard in wanted:
        ceiling = resource.getrlimit(which)[1]
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(which, (soft, hard))
    layers.append("rlimits")


def _kernel_filters(cfg: dict[str, Any], libc: Any, call: Callable[[int, str], None], exec_fd: int,
                    layers: list[str]) -> None:
    """no_new_privs, Landlock (optional: kernel >= 5.13), no capabilities, seccomp; all survive the exec."""
    import ctypes

    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    prctl = libc.prctl
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    machine = posix.uname().machine
    if machine != "x86_64":
        raise OSError(0, "the seccomp filter is written for x86_64, this is " + machine)
    call(prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    layers.append("no_new_privs")

    # ---- Landlock: syscalls 444-446
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
        call(ruleset, "landlock_create_ruleset")
        execute, write_file, read_file, read_dir = 1 << 0, 1 << 1, 1 << 2, 1 << 3
        workdir_rights = (read_file | read_dir | write_file | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8)
                          | (1 << 13) | (1 << 14)) & fs_all
        rules = [(p, read_file | read_dir, read_file) for p in cfg["read_roots"]]
        rules += [(p, 0, read_file | execute) for p in cfg["exec_files"]]
        rules += [(cfg["workdir"], workdir_rights, workdir_rights), ("/dev/null", 0, read_file | write_file)]
        for path, dir_rights, file_rights in rules:
            try:
                fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
            except OSError:
                continue
            rights = dir_rights if posix.fstat(fd).st_mode & 0o170000 == 0o040000 else file_rights
            rule = PathBeneath(rights & fs_all, fd)
            result = syscall(445, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0))
            posix.close(fd)
            call(result, "landlock_add_rule " + path)
        call(syscall(446, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
        posix.close(ruleset)
        layers.append(f"landlock_fs(abi={abi})")
        if net_all:
            layers.append("landlock_tcp")
        if scoped:
            layers.append("landlock_signal_scope")

    # ---- capabilities: empty bounding, ambient, effective, permitted and inheritable sets
    for cap in range(64):
        prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (fails harmlessly without CAP_SETPCAP or past the last cap)
    prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    call(syscall(126, header, data), "capset")
    layers.append("no_capabilities")

    # ---- seccomp: classic BPF on struct seccomp_data {nr @0, arch @4, ip @8, args[6] @16 (low half first)}
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]

    prog = _seccomp_program(cfg["max_processes"] > 1, posix.getpid(), exec_fd)
    array = (SockFilter * len(prog))(*[SockFilter(*op) for op in prog])
    fprog = SockFprog(len(prog), array)
    call(prctl(22, 2, ctypes.addressof(fprog), 0, 0), "PR_SET_SECCOMP")  # SECCOMP_MODE_FILTER
    layers.append("seccomp")


def _seccomp_program(allow_fork: bool, own_pid: int, exec_fd: int) -> list[tuple[int, int, int, int]]:
    """The filter's instructions (code, jt, jf, k); A holds the syscall number between the blocks."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000

    def errno_(n: int) -> int:
        return 0x00050000 | n

    eperm, eagain, enosys = errno_(1), errno_(11), errno_(38)
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, 0xC000003E), (ret, 0, 0, kill), (ld, 0, 0, 0),  # AUDIT_ARCH_X86_64 only
            (jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]  # no x32 syscalls
    denied = {
        59: eperm,  # execve (stage 1's own exec is the execveat below)
        112: eperm, 109: eperm,  # setsid, setpgid: nothing leaves the process group the parent kills
        41: eperm, 53: eperm,  # socket, socketpair
        101: eperm, 310: eperm, 311: eperm, 438: eperm, 424: eperm, 200: eperm,  # ptrace, process_vm_*, pidfd_*, tkill
        160: eperm,  # setrlimit (prlimit64 below)
        319: eperm, 447: eperm,  # memfd_create, memfd_secret: memory outside RLIMIT_AS
        29: eperm, 30: eperm, 31: eperm, 64: eperm, 65: eperm, 66: eperm, 220: eperm,  # SysV shm and semaphores
        68: eperm, 69: eperm, 70: eperm, 71: eperm,  # SysV message queues
        435: enosys,  # clone3: its flags are behind a pointer; glibc falls back to clone
        155: eperm, 161: eperm, 165: eperm, 166: eperm, 272: eperm, 308: eperm,  # pivot_root chroot mount umount2
        428: eperm, 429: eperm, 430: eperm, 431: eperm, 432: eperm, 433: eperm, 442: eperm,  # unshare setns, fs*
        175: eperm, 176: eperm, 313: eperm, 246: eperm, 320: eperm,  # modules, kexec
        321: eperm, 298: eperm, 323: eperm, 425: eperm,  # bpf, perf_event_open, userfaultfd, io_uring_setup
        248: eperm, 249: eperm, 250: eperm,  # keyrings
        103: eperm, 169: eperm, 163: eperm, 167: eperm, 168: eperm,  # syslog, reboot, acct, swapon/off
        179: eperm, 443: eperm, 227: eperm, 164: eperm, 305: eperm,  # quotactl(_fd), setting clocks
        170: eperm, 171: eperm, 172: eperm, 173: eperm,  # sethostname, setdomainname, iopl, ioperm
        303: eperm, 304: eperm, 134: eperm,  # name_to_handle_at, open_by_handle_at, uselib
    }
    if not allow_fork:
        denied.update({57: eagain, 58: eagain})  # fork, vfork
        # clone: threads (CLONE_THREAD) yes, processes no
        prog += [(jeq, 0, 4, 56), (ld, 0, 0, 16), (jset, 0, 1, 0x10000), (ret, 0, 0, allow), (ret, 0, 0, eagain)]
    for nr, action in denied.items():
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, action)]
    # execveat: only of the descriptor stage 1 holds (close-on-exec, so gone in stage 2), with AT_EMPTY_PATH
    prog += [(jeq, 0, 6, 322), (ld, 0, 0, 16), (jeq, 0, 3, exec_fd), (ld, 0, 0, 48), (jeq, 0, 1, _AT_EMPTY_PATH),
             (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    for nr in (62, 234, 129, 297):  # kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: only to itself
        prog += [(jeq, 0, 4, nr), (ld, 0, 0, 16), (jeq, 0, 1, own_pid), (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    # prlimit64: reading a limit yes (new_limit, arg 2, is NULL), setting one no
    prog += [(jeq, 0, 6, 302), (ld, 0, 0, 32), (jeq, 0, 3, 0), (ld, 0, 0, 36), (jeq, 0, 1, 0), (ret, 0, 0, allow),
             (ret, 0, 0, eperm)]
    prog.append((ret, 0, 0, allow))
    return prog


# ------------------------------------------------------------------------------------------------ stage 2
def _run(cfg: dict[str, Any]) -> None:
    """Read the code, install the audit hook, run the code as `__main__`; the status pipe says what happened."""
    import errno

    report = _reporter(cfg["status_fd"])
    _exit = posix._exit
    _print_exception = sys.__excepthook__  # the interpreter's own: no `traceback` import (ms), nothing to rebind
    with open(cfg["code_fd"], encoding="utf-8", closefd=True) as handle:
        source = handle.read()
    layers = cfg["layers"]
    if cfg["audit_hook"]:
        _install_hook(cfg)
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
        exc.__traceback__ = exc.__traceback__.tb_next  # without the bootstrap's frame
        _print_exception(type(exc), exc, exc.__traceback__)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - the same few names as everywhere in the child, no contextlib
            stream.flush()
        except BaseException:
            pass
    _exit(status)


def _install_hook(cfg: dict[str, Any]) -> None:
    """The audit hook. Every name its functions use is a closure bound here: no global or builtin is looked up
    when it runs (a test checks the bytecode), so rebinding `builtins.type` or patching `posix` changes nothing."""
    _lstat, _readlink, _getcwd, _getpid, _exit = posix.lstat, posix.readlink, posix.getcwd, posix.getpid, posix._exit
    _type, _str, _bytes, _int, _len, _OSError = type, str, bytes, int, len, OSError
    _decode, _item = bytes.decode, tuple.__getitem__  # a stat result's mode without its (patchable) class's help
    report = _reporter(cfg["status_fd"])
    workdir = cfg["workdir"]
    writable = (workdir, "/dev/null")
    readable = tuple(cfg["read_roots"]) + writable
    allow_fork = cfg["max_processes"] > 1
    max_writes = cfg["max_files"]
    too_many_writes = "more than " + str(max_writes) + " files opened for writing"
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
        try:
            report("forbidden", what)
        finally:
            _exit(1)

    def resolve(path: object, dir_fd: object) -> str | None:
        """An absolute path with every symlink resolved, or None when it cannot be resolved safely."""
        if _type(path) is _bytes:
            path = _decode(path, "utf-8", "surrogateescape")
        if _type(path) is not _str:
            return None
        if not path.startswith("/"):
            if dir_fd is None or (_type(dir_fd) is _int and dir_fd == -1):  # -1: the audit event's "no dir_fd"
                base = _getcwd()
            elif _type(dir_fd) is _int:
                try:
                    base = _readlink("/proc/self/fd/" + _str(dir_fd))
                except _OSError:
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
                mode = _item(_lstat(candidate), 0)
            except _OSError:
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
        for root in roots:  # noqa: SIM110 - any() would be one more builtin
            if path == root or path.startswith(root + "/"):
                return True
        return False

    def check_path(event: str, path: object, dir_fd: object, write: bool) -> None:
        if path is None and (event == "os.listdir" or event == "os.scandir"):
            path = "."
        if _type(path) is _int:
            return  # an already open descriptor: opening it was checked
        full = resolve(path, dir_fd)
        if full is None:
            deny(event + ": a path the sandbox cannot check")
        elif not inside(full, writable if write else readable):
            deny(event + ": " + full + (" (write)" if write else ""))

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            write = False
            if mode is not None:
                if _type(mode) is not _str:
                    deny("open: an unusual mode")
                for c in "wax+":
                    if c in mode:
                        write = True
            if _type(flags) is _int and flags & write_flags:
                write = True
            check_path("open", path, None, write)
            if write and _type(path) is not _int:
                writes[0] += 1
                if writes[0] > max_writes:
                    report("disk", too_many_writes)
                    _exit(1)
        elif event == "import":
            name = args[0]
            if _type(name) is not _str:
                deny("import of a non-string name")
            elif name in banned_imports or name.partition(".")[0] in banned_imports:
                deny("import " + name)
        elif event in path_events:
            indexes, fd_index, write = path_events[event]
            dir_fd = args[fd_index] if fd_index >= 0 and fd_index < _len(args) else None
            for i in indexes:
                if i < _len(args):
                    check_path(event, args[i], dir_fd, write)
        elif event in fork_events:
            if not allow_fork:
                deny(event)
        elif event == "os.kill":
            target = args[0]
            if _type(target) is not _int or target != _getpid():
                deny("os.kill of another process")
        elif (event in process_events or event in network_events or event in tamper_events
              or event in forbidden_paths or event.startswith("socket.") or event.startswith("ctypes.")
              or event.startswith("ssl.")):
            deny(event)

    sys.addaudithook(hook)


if __name__ == "__main__":  # the child: `python -I -S -B -X utf8 -c LAUNCHER <this code> <config>`
    _main()
