"""The sandbox for LLM-written Python: each attack is stopped with the right reason, quickly, leaving nothing.

Most attacks are run twice: with every layer on (the audit hook refuses it first, reason `forbidden`) and
with the audit hook off, so the kernel layers (Landlock, seccomp, the network namespace) must stop it on
their own, which proves they work here even as root. A control run with every layer off shows each test
would notice the attack succeeding.
"""

from __future__ import annotations

import functools
import os
import select
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagen_core.checks import sandbox, sandbox_child
from datagen_core.checks.sandbox import SandboxResult, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's limits are Linux's")

FAST = 2.0  # seconds a refused job may take, start to cleanup, on a loaded 2-core machine
KERNEL_ONLY = {"audit_hook": False}
NOTHING = {"audit_hook": False, "kernel_filters": False, "network_namespace": False}


@functools.cache
def layers() -> tuple[str, ...]:
    return run_python("print(1)").layers


def has_layer(prefix: str) -> bool:
    return any(layer.startswith(prefix) for layer in layers())


needs_landlock = pytest.mark.skipif(not has_layer("landlock_fs"), reason="the kernel has no Landlock")
needs_seccomp = pytest.mark.skipif(not has_layer("seccomp"), reason="no seccomp filter on this architecture")
needs_netns = pytest.mark.skipif(not sandbox._namespace_prefix()[1], reason="unshare cannot make a net namespace")


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
    assert follow_up.ok and follow_up.answer == "42"


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


def test_the_layers_that_worked_here_are_reported() -> None:
    reported = layers()
    for layer in ("process_group", "empty_env", "tempdir", "rlimits", "audit_hook"):
        assert layer in reported


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
    assert "_main" not in result.stderr  # the traceback shows the code, not the bootstrap


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


def test_minimal_environment_and_a_deleted_private_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAGEN_SANDBOX_SECRET", "hunter2")
    result = run_python("import os, sys\nprint(sorted(os.environ))\nprint(os.listdir('.'))\nprint(os.getcwd())")
    env, listing, cwd = result.stdout.splitlines()
    assert "DATAGEN_SANDBOX_SECRET" not in env and "PATH" not in env and "OPENAI_API_KEY" not in env
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
    "import os\nos.symlink({secret!r}, 'link')\nprint(open('link').read())",
    "import os\nos.chdir('/etc')\nprint(open('passwd').read())",
    "import pathlib\nprint(pathlib.Path({secret!r}).read_text())",
])
@pytest.mark.parametrize("options", [{}, KERNEL_ONLY], ids=["all_layers", "kernel_only"])
def test_files_outside_its_directory_are_out_of_reach(attack: str, options: dict[str, bool], secret: Path) -> None:
    if options and not has_layer("landlock_fs"):
        pytest.skip("the kernel has no Landlock")
    result = run_python(attack.format(secret=str(secret), folder=str(secret.parent)), **options)
    expected = "forbidden" if not options else "error"  # without the hook, the kernel refuses: PermissionError
    assert_stopped(result, expected)
    if options:
        assert "PermissionError" in result.detail
    else:
        assert result.detail.startswith(("open", "os.", "shutil."))
    assert "launch code" not in result.stdout and "root:" not in result.stdout
    assert secret.read_text() == "the launch code is 0000\n"
    assert not (secret.parent / "planted.txt").exists()


def test_control_without_any_layer_the_file_is_readable(secret: Path) -> None:
    result = run_python(f"print(open({str(secret)!r}).read())", **NOTHING)
    assert result.ok and "launch code" in result.stdout


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


@pytest.mark.parametrize("attack", [CONNECT, RAW_CONNECT], ids=["socket", "_socket"])
def test_a_socket_is_refused_and_the_listener_gets_nothing(attack: str, listener: socket.socket) -> None:
    result = run_python(attack.format(port=listener.getsockname()[1]))
    assert_stopped(result, "forbidden")
    assert "socket" in result.detail
    assert not connection_arrived(listener)


@needs_seccomp
def test_kernel_only_seccomp_refuses_socket_creation(listener: socket.socket) -> None:
    result = run_python(CONNECT.format(port=listener.getsockname()[1]), audit_hook=False, network_namespace=False)
    assert_stopped(result, "error")
    assert "PermissionError" in result.detail
    assert not connection_arrived(listener)


@needs_netns
def test_kernel_only_the_network_namespace_has_no_route(listener: socket.socket) -> None:
    result = run_python(CONNECT.format(port=listener.getsockname()[1]), audit_hook=False, kernel_filters=False)
    assert_stopped(result, "error")
    assert "unreachable" in result.detail.lower() or "Errno 101" in result.detail
    assert any("netns" in layer for layer in result.layers)
    assert not connection_arrived(listener)


def test_control_without_any_layer_the_listener_is_reached(listener: socket.socket) -> None:
    result = run_python(CONNECT.format(port=listener.getsockname()[1]), **NOTHING)
    assert result.ok and result.answer == "connected"
    assert connection_arrived(listener)


# --------------------------------------------------------------------------- (c) processes
FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"
SUBPROCESS_LOOP = "import subprocess\nwhile True:\n    subprocess.Popen(['sleep', '100'])\n"
SYSTEM_LOOP = "import os\nwhile True:\n    os.system('sleep 100 &')\n"
SPAWN_LOOP = "import os\nwhile True:\n    os.posix_spawn('/bin/sleep', ['sleep', '100'], {})\n"


@pytest.mark.parametrize("attack", [FORK_BOMB, SUBPROCESS_LOOP, SYSTEM_LOOP, SPAWN_LOOP],
                         ids=["fork", "subprocess", "system", "posix_spawn"])
def test_process_creation_is_refused(attack: str) -> None:
    result = run_python(attack)
    assert_stopped(result, "forbidden")


@needs_seccomp
@pytest.mark.parametrize("attack", [
    FORK_BOMB,
    "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    assert libc.fork() >= 0, 'fork refused'\n",
    "import _posixsubprocess, os\nprint(os.execv('/bin/sleep', ['sleep', '100']))",
], ids=["os.fork", "ctypes_fork", "execv"])
def test_kernel_only_a_fork_bomb_stops_even_as_root(attack: str) -> None:
    """RLIMIT_NPROC does nothing for root; the seccomp filter refuses the fork itself (EAGAIN)."""
    result = run_python(attack, **KERNEL_ONLY)
    assert_stopped(result, "error")
    assert any(hint in result.detail for hint in ("Errno 11", "fork refused", "Errno 1", "Errno 13"))


@needs_seccomp
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
@pytest.mark.parametrize("options", [{}, KERNEL_ONLY], ids=["all_layers", "kernel_only"])
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


# --------------------------------------------------------------------------- the caller
def test_the_hook_cannot_be_tampered_with() -> None:
    for attack in ("import sys\nsys.settrace(lambda *a: None)", "import gc\ngc.get_objects()",
                   "import sys\nsys.addaudithook(lambda *a: None)", "import resource\n"
                   "resource.setrlimit(resource.RLIMIT_CPU, (100, 100))", "import ctypes"):
        assert_stopped(run_python(attack), "forbidden")


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
