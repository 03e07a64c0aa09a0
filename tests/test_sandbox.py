"""The sandbox for LLM-written Python: each attack is stopped with the right reason, quickly, leaving nothing.

Most attacks are run twice: with every layer on (the audit hook usually refuses first, reason `forbidden`) and
with the audit hook off, so the kernel layers (the empty root, seccomp, the namespaces, Landlock) must stop it
on their own, which proves they work here even as root. Each finding has a CONTROL: the same probe in a plain
interpreter, outside the sandbox, shows the leak exists on this machine, so the test would notice it open.
"""

from __future__ import annotations

import dis
import functools
import importlib.util
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagen_core.checks import sandbox, sandbox_child
from datagen_core.checks.sandbox import SandboxResult, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's limits are Linux's")

FAST = 2.0  # seconds a refused job may take, start to cleanup, on a loaded 2-core machine
KERNEL_ONLY = {"audit_hook": False}
NOTHING = {"audit_hook": False, "kernel_filters": False, "namespaces": False}
BOTH = pytest.mark.parametrize("options", [{}, KERNEL_ONLY], ids=["all_layers", "kernel_only"])


@functools.cache
def layers() -> tuple[str, ...]:
    return run_python("print(1)").layers


def has_layer(prefix: str) -> bool:
    return any(layer.startswith(prefix) for layer in layers())


needs_landlock = pytest.mark.skipif(not has_layer("landlock_fs"), reason="the kernel has no Landlock")


def outside(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """CONTROL: `code` in a plain interpreter, no sandbox at all (empty environment unless `env`)."""
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          env={} if env is None else env, check=False)


def processes() -> list[tuple[int, int, int, str]]:
    """(pid, ppid, pgrp, state) of every process, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found.append((int(entry), int(fields[1]), int(fields[2]), fields[0]))
    return found


def alive_in_group(pgid: int) -> list[int]:
    return [pid for pid, _, pgrp, state in processes() if pgrp == pgid and state != "Z"]


def my_children() -> list[int]:
    me = os.getpid()
    return [pid for pid, ppid, _, _ in processes() if ppid == me]


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Every test: no child of ours survives it, and the next job still runs normally."""
    yield
    assert my_children() == []
    follow_up = run_python("print(6 * 7)")
    assert follow_up.ok and follow_up.answer == "42", (follow_up.reason, follow_up.detail)


def assert_stopped(result: SandboxResult, reason: str, within: float = FAST) -> None:
    assert result.reason == reason, (result.reason, result.detail, result.stderr[-500:])
    assert not result.ok
    assert result.seconds < within, result.seconds
    assert alive_in_group(result.pid) == []


# --------------------------------------------------------------------------- normal code
def test_arithmetic_runs_and_its_last_printed_line_is_the_answer() -> None:
    code = (
        "from fractions import Fraction\nimport math, decimal, statistics, itertools\n"
        "def main():\n    pieces = 54 - 16\n    print('working...')\n    print(pieces)\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    result = run_python(code)
    assert result.ok and result.reason == "ok" and result.exit_code == 0
    assert result.answer == "38"
    assert result.seconds < FAST
    assert run_python("from fractions import Fraction\nprint(Fraction(3, 4) + Fraction(1, 8))").answer == "7/8"


def test_the_math_checks_usual_modules_all_work() -> None:
    code = (
        "import math, fractions, decimal, itertools, statistics, functools, collections, random, re, datetime\n"
        "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n"
        "decimal.getcontext().prec = 30\n"
        "print(math.comb(10, 3), fractions.Fraction(1, 3) + 1, decimal.Decimal(1) / 7, statistics.median([3, 1, 2]),"
        " len(list(itertools.permutations('abc'))), functools.reduce(lambda a, b: a * b, range(1, 6)),"
        " collections.Counter('aab')['a'], random.Random(1).randint(1, 1), P(2).x, datetime.date(2024, 3, 1))\n"
    )
    result = run_python(code)
    assert result.ok, (result.detail, result.stderr)
    assert result.answer == "120 4/3 0.142857142857142857142857142857 2 6 120 2 1 2 2024-03-01"


def test_the_layers_that_worked_here_are_reported() -> None:
    reported = layers()
    for layer in ("process_group", "empty_env", "tempdir", "netns", "ipcns", "utsns", "empty_root", "rlimits",
                  "no_new_privs", "no_capabilities", "seccomp", "fresh_interpreter", "audit_hook"):
        assert layer in reported, reported
    assert ("uid_nobody" if os.geteuid() == 0 else "userns") in reported  # as root, userns is optional


def test_threads_and_files_in_its_own_directory_are_fine() -> None:
    code = (
        "import threading, os\nopen('notes.txt', 'w').write('12')\nos.mkdir('sub')\n"
        "box = []\nt = threading.Thread(target=lambda: box.append(int(open('notes.txt').read())))\n"
        "t.start(); t.join()\nos.remove('notes.txt')\nprint(box[0] * 2)\n"
    )
    result = run_python(code)
    assert result.ok, result.stderr
    assert result.answer == "24"


def test_a_syntax_error_is_an_error() -> None:
    result = run_python("print(1 +")
    assert result.reason == "error" and "SyntaxError" in result.detail
    result = run_python("raise ValueError('no answer')")
    assert result.reason == "error" and "ValueError: no answer" in result.detail
    assert "_run" not in result.stderr  # the traceback shows the code, not the bootstrap


def test_the_code_compiles_as_written_not_with_the_bootstraps_future_flags() -> None:
    result = run_python("def f(x: int) -> None:\n    pass\nprint(f.__annotations__['x'] is int)")
    assert result.ok and result.answer == "True", result.stderr


def test_the_status_pipe_carries_one_line_per_report() -> None:
    """The child's own module, imported here: a report is one line, the parent keeps the first of each kind."""
    line = sandbox_child.status_line("forbidden", "open: /etc/passwd\n(write)\tnow")
    assert line == b"forbidden\topen: /etc/passwd (write) now\n"
    assert sandbox_child.status_line("layers") == b"layers\t\n"
    assert len(sandbox_child.status_line("note", "x" * 5000)) == len("note\t") + 1000 + 1
    raw = (sandbox_child.status_line("layers", "rlimits,audit_hook") + sandbox_child.status_line("disk", "first")
           + sandbox_child.status_line("disk", "second") + "syntax\tSyntaxError: é".encode() + b"\xff")
    assert sandbox_child.parse_status(raw) == {"layers": "rlimits,audit_hook", "disk": "first",
                                               "syntax": "SyntaxError: é\ufffd"}
    assert sandbox_child.parse_status(b"") == {}


# --------------------------------------------------------------------------- secrets in the environment
def test_environment_secrets_stay_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hunter2")
    monkeypatch.setenv("DATAGEN_SANDBOX_SECRET", "hunter2")
    probe = "import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))"
    control = outside(probe, env=dict(os.environ))
    assert "sk-hunter2" in control.stdout  # CONTROL: a plain child inherits it
    result = run_python(probe)
    assert result.ok, result.detail
    names, key = result.stdout.splitlines()
    assert key == "None" and "hunter2" not in result.stdout
    assert "OPENAI_API_KEY" not in names and "DATAGEN_SANDBOX_SECRET" not in names and "PATH" not in names


def test_a_private_directory_that_is_deleted_afterwards() -> None:
    result = run_python("import os\nprint(os.listdir('.'))\nprint(os.getcwd())")
    listing, cwd = result.stdout.splitlines()
    assert listing == "[]"
    assert not Path(cwd).exists() and not Path(cwd).parent.exists()


# --------------------------------------------------------------------------- (a) files outside
@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("the launch code is 0000\n")
    return path


@pytest.mark.parametrize("attack", [
    "print(open({secret!r}).read())",
    "print(open('/etc/passwd').read())",
    "import os\nprint(os.listdir({folder!r}))",
    "import os\nos.remove({secret!r})",
    "open({folder!r} + '/planted.txt', 'w').write('x')",
    "open('/tmp/planted-by-the-sandbox.txt', 'w').write('x')",
    "import os\nos.symlink({secret!r}, 'link')\nprint(open('link').read())",
    "import os\nos.chdir('/etc')\nprint(open('passwd').read())",
    "import pathlib\nprint(pathlib.Path({secret!r}).read_text())",
])
@BOTH
def test_files_outside_its_directory_are_out_of_reach(attack: str, options: dict[str, bool], secret: Path) -> None:
    result = run_python(attack.format(secret=str(secret), folder=str(secret.parent)), **options)
    if options:  # the kernel refuses: the file is not in the empty root, or not writable there
        assert_stopped(result, "error")
        assert any(e in result.detail for e in ("FileNotFoundError", "PermissionError", "Read-only")), result.detail
    else:
        assert_stopped(result, "forbidden")
        assert result.detail.startswith(("open", "os.", "shutil."))
    assert "launch code" not in result.stdout and "root:" not in result.stdout
    assert secret.read_text() == "the launch code is 0000\n"
    assert not (secret.parent / "planted.txt").exists()
    assert not Path("/tmp/planted-by-the-sandbox.txt").exists()


def test_control_outside_the_files_are_readable_and_writable(secret: Path) -> None:
    control = outside(f"print(open({str(secret)!r}).read())\nopen({str(secret.parent)!r} + '/planted.txt', 'w')")
    assert "launch code" in control.stdout and (secret.parent / "planted.txt").exists()


METADATA_PROBES = {  # what each leaks outside: something only the host has
    "stat": "os.stat('/etc/shadow').st_size",
    "lstat": "os.lstat('/etc/passwd').st_mtime",
    "readlink_proc_exe": "os.readlink('/proc/self/exe')",
    "readlink_proc_cwd": "os.readlink('/proc/self/cwd')",
    "listdir_etc": "[name for name in os.listdir('/etc') if name in ('passwd', 'hostname', 'os-release')]",
    "listdir_proc_fd": "os.listdir('/proc/self/fd')",
    "scandir_root": "[e.name for e in os.scandir('/') if e.name in ('home', 'proc', 'var', 'work')]",
    "stat_proc_1": "os.stat('/proc/1').st_ctime",
    "exists": "os.path.exists('/etc/shadow')",
    "access": "os.access('/etc/passwd', os.R_OK)",
    "isdir_home": "os.path.isdir('/home') or os.path.isdir('/var')",
}
METADATA = ("import os\ntry:\n    value = {probe}\nexcept OSError as exc:\n    value = None\n"
            "print('leaked' if value else 'nothing', repr(value))\n")


@pytest.mark.parametrize("name", list(METADATA_PROBES))
@BOTH
def test_metadata_of_files_outside_is_not_visible(name: str, options: dict[str, bool]) -> None:
    """os.stat & co raise no audit event: only the empty root (a tmpfs with a few bind mounts) stops them."""
    code = METADATA.format(probe=METADATA_PROBES[name])
    control = outside(code)
    assert control.stdout.startswith("leaked"), control.stdout + control.stderr  # CONTROL
    result = run_python(code, **options)
    assert "leaked" not in result.stdout, result.stdout
    if result.reason == "forbidden":  # the hook saw it first (os.listdir, os.scandir)
        assert not options and result.detail.startswith(("os.listdir", "os.scandir"))
    else:
        assert result.ok and result.stdout.startswith("nothing"), (result.reason, result.detail)


# --------------------------------------------------------------------------- memory outside the limit
MEMFD = ("import os\nfd = os.memfd_create('ballast')\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n"
         "    os.write(fd, chunk)\nprint('allocated', os.fstat(fd).st_size >> 20, 'MB')\n")


def test_memfd_create_cannot_allocate_past_the_memory_limit() -> None:
    limited = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))\n"
    control = outside(limited + MEMFD)  # CONTROL: 1 GB in a memfd under a 256 MB RLIMIT_AS
    assert control.stdout.strip() == "allocated 1024 MB", control.stderr
    for options in ({}, KERNEL_ONLY):
        result = run_python(MEMFD, memory_mb=256, max_file_mb=2048, **options)
        assert_stopped(result, "error")
        assert "PermissionError" in result.detail and "allocated" not in result.stdout


# --------------------------------------------------------------------------- ctypes and the audit hook
DROP_CTYPES = "import ctypes, sys\nfor name in [n for n in sys.modules if 'ctypes' in n]:\n    del sys.modules[name]\n"
SUBCLASSES = ("classes = {c.__name__: c for c in ().__class__.__base__.__subclasses__()}\n"
              "CDLL = classes.get('CDLL')\nprint('no CDLL' if CDLL is None else f'getuid() = {CDLL(None).getuid()}')\n")


@BOTH
def test_ctypes_is_not_reachable_through_object_subclasses(options: dict[str, bool]) -> None:
    """Stage 1 needs ctypes; stage 2, a fresh interpreter, never loads it, so no class of it exists there."""
    control = outside(DROP_CTYPES + SUBCLASSES)  # CONTROL: what a bootstrap that imported ctypes left behind
    assert control.stdout.startswith("getuid() = "), control.stderr
    result = run_python(SUBCLASSES, **options)
    assert result.ok and result.answer == "no CDLL", (result.reason, result.detail)


LIBC = (
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "results = {'open': libc.open(b'/etc/passwd', 0), 'socket': libc.socket(2, 1, 0),\n"
    "           'memfd': libc.memfd_create(b'x', 0), 'unshare': libc.unshare(0x10000000),\n"
    "           'chroot': libc.chroot(b'/'), 'setsid': libc.setsid()}\n"
    "pid = libc.fork()\nif pid == 0:\n    libc._exit(0)\nresults['fork'] = pid\n"
    "print(sorted(name for name, value in results.items() if value >= 0))\n"
)


def test_libc_through_ctypes_is_held_by_the_kernel_layers() -> None:
    """Code that gets native calls (ctypes here, a CPython bug elsewhere) still meets the kernel layers."""
    control = outside(LIBC)  # CONTROL: each call works in a plain process (chroot only as root)
    leaked = set(json.loads(control.stdout.replace("'", '"')))
    assert {"fork", "memfd", "open", "setsid", "socket"} <= leaked, control.stdout + control.stderr
    assert ("chroot" in leaked) == (os.geteuid() == 0)
    assert_stopped(run_python(LIBC), "forbidden")  # the hook refuses `import ctypes`
    result = run_python(LIBC, **KERNEL_ONLY)
    assert result.ok, (result.detail, result.stderr)
    assert result.answer == "[]"  # every one of them failed


REBIND = (
    "import builtins\nreal_type = type\n"
    "builtins.type = lambda obj, *rest: int if obj == '/etc/passwd' else real_type(obj, *rest)\n"
    "print('type lies:', type('/etc/passwd') is int)\nprint(open('/etc/passwd').read()[:5])\n"
)


@BOTH
def test_rebinding_builtins_does_not_defeat_the_hook(options: dict[str, bool]) -> None:
    """The hook skips already-open descriptors (ints): a hook that looked `type` up would wave the path through."""
    control = outside(REBIND)  # CONTROL: the rebinding works, and the file is there
    assert control.stdout.startswith("type lies: True\nroot:"), control.stdout + control.stderr
    result = run_python(REBIND, **options)
    if options:
        assert_stopped(result, "error")
        assert "FileNotFoundError" in result.detail
    else:
        assert_stopped(result, "forbidden")
        assert result.detail == "open: /etc/passwd"
    assert "root:" not in result.stdout


def nested_code(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from nested_code(const)


@pytest.mark.parametrize("installer", [sandbox_child._install_hook, sandbox_child._reporter])
def test_the_hook_looks_up_no_global_or_builtin_when_it_runs(installer: types.FunctionType) -> None:
    """Everything the hook's functions call is a closure bound at install time; bytecode does not lie."""
    inner = list(nested_code(installer.__code__))
    assert inner
    for code in inner:
        lookups = [ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
        assert lookups == [], (code.co_name, lookups)


def test_the_hook_cannot_be_tampered_with() -> None:
    spec = importlib.util.find_spec("_ctypes")
    assert spec is not None
    for attack in ("import sys\nsys.settrace(lambda *a: None)", "import gc\ngc.get_objects()",
                   "import sys\nsys.addaudithook(lambda *a: None)", "import resource\n"
                   "resource.setrlimit(resource.RLIMIT_CPU, (100, 100))", "import ctypes", "import _ctypes",
                   f"import _imp, importlib.machinery as m\n_imp.create_dynamic(m.ModuleSpec('_ctypes', None, "
                   f"origin={spec.origin!r}))"):
        assert_stopped(run_python(attack), "forbidden")


# --------------------------------------------------------------------------- (b) network
@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def connection_arrived(server: socket.socket) -> bool:
    readable, _, _ = select.select([server], [], [], 0.3)
    if not readable:
        return False
    connection, _ = server.accept()
    connection.close()
    return True


CONNECT = "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
RAW_CONNECT = ("import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
               "s.connect(('127.0.0.1', {port}))\nprint('connected')")


def test_control_outside_the_listener_is_reached(listener: socket.socket) -> None:
    control = outside(CONNECT.format(port=listener.getsockname()[1]))
    assert control.stdout.strip() == "connected" and connection_arrived(listener)


@pytest.mark.parametrize("attack", [CONNECT, RAW_CONNECT], ids=["socket", "_socket"])
def test_a_socket_is_refused_and_the_listener_gets_nothing(attack: str, listener: socket.socket) -> None:
    result = run_python(attack.format(port=listener.getsockname()[1]))
    assert_stopped(result, "forbidden")
    assert "socket" in result.detail
    assert not connection_arrived(listener)


def test_kernel_only_seccomp_refuses_socket_creation(listener: socket.socket) -> None:
    result = run_python(CONNECT.format(port=listener.getsockname()[1]), audit_hook=False, namespaces=False)
    assert_stopped(result, "error")
    assert "PermissionError" in result.detail
    assert not connection_arrived(listener)


def test_kernel_only_the_network_namespace_has_no_route(listener: socket.socket) -> None:
    result = run_python(CONNECT.format(port=listener.getsockname()[1]), audit_hook=False, kernel_filters=False)
    assert_stopped(result, "error")
    assert "unreachable" in result.detail.lower() or "Errno 101" in result.detail
    assert "netns" in result.layers
    assert not connection_arrived(listener)


# --------------------------------------------------------------------------- (c) processes
FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"
SUBPROCESS_LOOP = "import subprocess\nwhile True:\n    subprocess.Popen(['sleep', '100'])\n"
SYSTEM_LOOP = "import os\nwhile True:\n    os.system('sleep 100 &')\n"
SPAWN_LOOP = "import os\nwhile True:\n    os.posix_spawn('/bin/sleep', ['sleep', '100'], {})\n"


def test_control_outside_a_process_can_fork() -> None:
    control = outside("import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('forked')")
    assert control.stdout.strip() == "forked"


@pytest.mark.parametrize("attack", [FORK_BOMB, SUBPROCESS_LOOP, SYSTEM_LOOP, SPAWN_LOOP],
                         ids=["fork", "subprocess", "system", "posix_spawn"])
def test_process_creation_is_refused(attack: str) -> None:
    result = run_python(attack)
    assert_stopped(result, "forbidden")


@pytest.mark.parametrize("attack", [
    FORK_BOMB,
    "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    assert libc.fork() >= 0, 'fork refused'\n",
    "import _posixsubprocess, os\nprint(os.execv('/bin/sleep', ['sleep', '100']))",
], ids=["os.fork", "ctypes_fork", "execv"])
def test_kernel_only_a_fork_bomb_stops_even_as_root(attack: str) -> None:
    """RLIMIT_NPROC does nothing for root; the seccomp filter refuses the fork itself (EAGAIN)."""
    result = run_python(attack, **KERNEL_ONLY)
    assert_stopped(result, "error")
    assert any(hint in result.detail for hint in ("Errno 11", "fork refused", "Errno 1]")), result.detail


def test_a_fork_bomb_allowed_to_fork_is_bounded_by_the_task_limit() -> None:
    """With forks allowed (max_processes > 1) and no hook, RLIMIT_NPROC in the job's own user namespace holds."""
    code = ("import os, time\ncount = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        count += 1\nexcept OSError as exc:\n"
            "    print(count, 'forks, then errno', exc.errno, flush=True)\n")
    result = run_python(code, max_processes=2, timeout_s=10, **KERNEL_ONLY)
    assert result.ok, (result.reason, result.detail)
    count, errno = int(result.stdout.split()[0]), int(result.stdout.split()[-1])
    assert errno == 11 and count < 2 * sandbox_child._TASKS_PER_PROCESS
    assert alive_in_group(result.pid) == []


def test_children_cannot_leave_the_process_group() -> None:
    code = (
        "import os\npid = os.fork()\nif pid == 0:\n    try:\n        os.setsid()\n"
        "        print('escaped', flush=True)\n    except OSError as exc:\n"
        "        print('setsid refused', exc.errno, flush=True)\n    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    result = run_python(code, max_processes=4, audit_hook=False)
    assert result.ok, result.stderr
    assert result.answer == "setsid refused 1"


def test_the_whole_process_group_is_killed_on_timeout() -> None:
    """Even with the fork refusals off, whatever the code started dies with it."""
    code = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        print('child', flush=True)\n"
            "        time.sleep(100)\ntime.sleep(100)\n")
    result = run_python(code, timeout_s=1.0, max_processes=8, **NOTHING)
    assert_stopped(result, "timeout", within=1.0 + FAST)
    assert result.stdout.count("child") == 3  # they did start, and assert_stopped saw none of them left


# --------------------------------------------------------------------------- (d) memory, (e) time
def test_unbounded_allocation_hits_the_memory_limit() -> None:
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(10**6))\n", memory_mb=128)
    assert_stopped(result, "memory_limit")


def test_one_huge_allocation_hits_the_memory_limit() -> None:
    assert_stopped(run_python("x = ' ' * (2 * 1024**3)\nprint(len(x))"), "memory_limit")


def test_an_endless_loop_hits_the_cpu_limit() -> None:
    result = run_python("while True:\n    pass\n", cpu_s=1, timeout_s=4.0)
    assert_stopped(result, "cpu_limit", within=1.0 + FAST)
    assert result.cpu_seconds >= 0.9


def test_sleeping_forever_hits_the_wall_clock_timeout() -> None:
    result = run_python("import time\ntime.sleep(1000)\n", timeout_s=1.0)
    assert_stopped(result, "timeout", within=1.0 + FAST)
    assert result.signal == 9


# --------------------------------------------------------------------------- (f) disk and output
@BOTH
def test_a_huge_file_hits_the_file_size_limit(options: dict[str, bool]) -> None:
    code = "with open('big.bin', 'wb') as handle:\n    while True:\n        handle.write(b'x' * 65536)\n"
    assert_stopped(run_python(code, max_file_mb=1, **options), "file_limit")


def test_many_files_hit_the_disk_limit() -> None:
    code = "for i in range(10_000):\n    open(f'f{i}.txt', 'w').write('x' * 1000)\n"
    result = run_python(code)
    assert_stopped(result, "disk_limit")


def test_the_parent_caps_the_directory_size_too() -> None:
    code = ("import time\nfor i in range(1000):\n    open(f'f{i}.bin', 'wb').write(b'x' * ((1 << 20) - 1))\n"
            "    time.sleep(0.01)\n")
    result = run_python(code, max_disk_mb=4, timeout_s=5.0, **KERNEL_ONLY)
    assert_stopped(result, "disk_limit")


def test_a_flood_of_output_is_cut_off() -> None:
    result = run_python("while True:\n    print('x' * 1000)\n", max_output_kb=64)
    assert_stopped(result, "output_limit")
    assert len(result.stdout) <= 64 * 1024


# --------------------------------------------------------------------------- failing closed
def test_a_layer_that_cannot_be_installed_refuses_the_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bind mount that fails (here: its source is missing) stops the job before any code runs, in one line."""
    layout = sandbox._layout()
    broken = sandbox._Layout(layout.interpreter, (*layout.mounts, ("ro", str(tmp_path / "gone"))),
                             layout.read_roots, layout.exec_files)
    monkeypatch.setattr(sandbox, "_layout", lambda: broken)
    result = run_python("print('ran')")
    assert_stopped(result, "unavailable")
    assert "\n" not in result.detail and str(tmp_path / "gone") in result.detail, result.detail
    assert "No such file" in result.detail
    assert result.stdout == ""


@needs_landlock
def test_landlock_holds_without_the_empty_root(secret: Path) -> None:
    """The optional Landlock layer on its own: the file exists in this mount namespace but cannot be opened."""
    result = run_python(f"print(open({str(secret)!r}).read())", audit_hook=False, namespaces=False)
    assert_stopped(result, "error")
    assert "PermissionError" in result.detail


UNPRIVILEGED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from datagen_core.checks.sandbox import run_python
shadow = run_python("import os\\ntry:\\n    print(os.stat('/etc/shadow').st_size)\\nexcept OSError as exc:\\n"
                    "    print(exc)")
memfd = run_python("import os\\nos.memfd_create('x')", audit_hook=False)
maths = run_python("import math, fractions\\nprint(fractions.Fraction(math.comb(5, 2), 4))")
print(json.dumps({"shadow": shadow.stdout, "memfd": memfd.detail, "maths": maths.answer, "layers": maths.layers}))
"""


def runs_as_nobody(interpreter: str) -> bool:
    try:
        return subprocess.run([interpreter, "-I", "-S", "-c", "pass"], user=sandbox_child.NOBODY, cwd="/",
                              capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:  # cannot even be executed by that user (a home directory of mode 0700 on the way)
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="this run is unprivileged already: every other test covers it")
def test_an_unprivileged_parent_gets_the_same_jail() -> None:
    """As root, run the sandbox from a parent that is uid 65534: user namespace instead of dropping to nobody."""
    interpreter = next((p for p in (os.path.realpath(sys.executable), "/usr/bin/python3") if runs_as_nobody(p)), None)
    if interpreter is None:
        pytest.skip("no interpreter here that uid 65534 may run")
    package = tempfile.mkdtemp(prefix="sandbox-unprivileged-")
    try:
        checks = Path(package, "datagen_core", "checks")
        checks.mkdir(parents=True)
        for path in (checks.parent / "__init__.py", checks / "__init__.py"):
            path.write_text("")
        for module in (sandbox, sandbox_child):
            shutil.copy(module.__file__, checks)
        for path in [Path(package), *Path(package).rglob("*")]:
            path.chmod(0o755)
        ran = subprocess.run([interpreter, "-I", "-c", UNPRIVILEGED, package], user=sandbox_child.NOBODY,
                             group=sandbox_child.NOBODY, extra_groups=[], capture_output=True, text=True,
                             timeout=120, env={}, cwd="/", check=False)
    finally:
        shutil.rmtree(package)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert "No such file" in report["shadow"] and "PermissionError" in report["memfd"] and report["maths"] == "5/2"
    assert {"userns", "empty_root", "netns", "seccomp", "no_new_privs", "fresh_interpreter", "audit_hook"} <= set(
        report["layers"]) and "uid_nobody" not in report["layers"]


# --------------------------------------------------------------------------- the caller
def test_concurrent_jobs_from_threads_do_not_interfere() -> None:
    results: list[SandboxResult] = []
    lock = threading.Lock()

    def job(n: int) -> None:
        result = run_python(f"print({n} * {n})" if n % 2 else "while True:\n    pass\n", cpu_s=1)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.answer for r in results if r.ok) == ["1", "9"]
    assert sorted(r.reason for r in results if not r.ok) == ["cpu_limit", "cpu_limit"]
