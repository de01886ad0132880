"""The sandbox contains hostile programs: nothing outside changes, nothing is left running."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chatforge.errors import ConfigError
from chatforge.eval.sandbox import SANDBOX_UIDS, ProgramResult, isolation_mode, run_program

REPO = Path(__file__).resolve().parents[1]
NAMESPACES = isolation_mode() in ("namespaces", "userns")
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES, reason=f"isolation here is {isolation_mode()!r}"
)
# Small limits: other developers share this machine while fork bombs run.
LIMITS = {"timeout_s": 3.0, "memory_mb": 256, "max_processes": 32}


def leftovers() -> list[str]:
    """Processes still running under a sandbox uid, or still children of this test process."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid, ppid = int(fields["Uid"].split()[0]), int(fields["PPid"])
        if uid in SANDBOX_UIDS or ppid == os.getpid():
            found.append(f"pid {name} uid {uid} ppid {ppid}: {fields['Name'].strip()}")
    return found


def run(code: str, *, bystanders: tuple[int, ...] = (), **limits: float) -> ProgramResult:
    # Children this test process had before (worker pools or Ray processes that earlier tests
    # of the suite left) are not the sandbox's.
    before = {int(p.split()[1]) for p in leftovers()}
    result = run_program(textwrap.dedent(code), **{**LIMITS, **limits})
    assert [p for p in leftovers() if int(p.split()[1]) not in (*bystanders, *before)] == []
    return result


def test_a_clean_program_runs_in_a_fresh_directory_with_a_scrubbed_environment() -> None:
    result = run("""
        import json, os
        print(json.dumps([os.getcwd(), dict(os.environ)]))
    """)
    assert result.status == "ok" and result.returncode == 0 and result.reason == ""
    cwd, env = json.loads(result.stdout)
    assert env["HOME"].startswith(cwd + "/")
    assert set(env) <= {"PATH", "HOME", "LC_CTYPE"}
    assert result.isolation == isolation_mode()


def test_exit_status_and_stderr_are_reported() -> None:
    result = run("import sys\nprint('to stderr', file=sys.stderr)\nsys.exit(3)")
    assert (result.status, result.returncode, result.reason) == ("error", 3, "exit status 3")
    assert result.stderr == "to stderr\n"


def test_bad_limits_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        run_program("pass", timeout_s=0)


@pytest.mark.parametrize(
    "code",
    [
        "while True: pass",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.01)",
    ],
    ids=["busy-loop", "ignores-sigterm"],
)
def test_an_infinite_loop_times_out(code: str) -> None:
    result = run(code, timeout_s=1.0)
    assert result.status == "timeout" and result.wall_s < 4.0


def test_a_fork_bomb_is_held_to_the_process_limit_and_killed() -> None:
    result = run(
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
        timeout_s=1.5,
    )
    assert result.status in ("timeout", "error")


def test_a_thread_bomb_is_held_to_the_process_limit() -> None:
    result = run("""
        import threading, time
        n = 0
        try:
            while True:
                threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
                n += 1
        finally:
            print(n)
    """)
    assert result.status == "error" and int(result.stdout) < LIMITS["max_processes"]


def test_allocating_20_gb_fails_inside_the_memory_limit() -> None:
    result = run("""
        chunks = []
        try:
            big = bytearray(20 << 30)
        except MemoryError:
            print("refused")
        while True:
            chunks.append(bytearray(64 << 20))
    """)
    assert result.status == "error" and "refused" in result.stdout
    assert "MemoryError" in result.stderr


def test_filling_the_disk_stops_at_the_private_tmpfs(tmp_path: Path) -> None:
    before = os.statvfs("/tmp").f_bfree * os.statvfs("/tmp").f_frsize
    result = run("""
        import os
        for target in ("big", "/tmp/big2", "/dev/shm/big3"):
            try:
                with open(target, "wb") as f:
                    while True:
                        f.write(b"x" * (1 << 20))
            except OSError as e:
                print(target, type(e).__name__)
        for i in range(100000):
            open(f"f{i}", "w").close()
    """)
    after = os.statvfs("/tmp").f_bfree * os.statvfs("/tmp").f_frsize
    assert result.status == "error"
    assert result.stdout.count("Error") == 3
    assert abs(after - before) < 32 << 20


ESCAPES = {
    "open": "open(TARGET, 'w').write('x'); os.remove(SENTINEL); shutil.rmtree(DIR)",
    "ctypes": (
        "import ctypes; libc = ctypes.CDLL(None); "
        "print(libc.unlink(SENTINEL.encode()), libc.creat(TARGET.encode(), 0o644))"
    ),
    "subclasses": (
        "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]; "
        "g = w.__init__.__globals__; g['remove'](SENTINEL); g['system']('touch ' + TARGET)"
    ),
    "subprocess": "subprocess.run(['rm', '-rf', DIR]); subprocess.run(['sh', '-c', 'echo x > ' + TARGET])",
}


@pytest.mark.parametrize("how", ESCAPES)
def test_writing_or_deleting_outside_the_working_directory_changes_nothing(
    how: str, tmp_path: Path
) -> None:
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    targets = [
        tmp_path / "created.txt",
        REPO / f"created-{secrets.token_hex(4)}.txt",
        Path("/etc/chatforge-x"),
    ]
    for target in targets:
        attack = ESCAPES[how].replace("TARGET", repr(str(target)))
        attack = attack.replace("SENTINEL", repr(str(sentinel))).replace("DIR", repr(str(tmp_path)))
        result = run(
            f"import os, shutil, subprocess\ntry:\n    {attack}\nexcept Exception as e:\n    print(e)"
        )
        assert result.status in ("ok", "error")
        assert not target.exists()
    assert sentinel.read_text() == "keep me"


@needs_namespaces
def test_network_connections_tcp_udp_and_dns_fail() -> None:
    tcp = socket.socket()
    tcp.bind(("0.0.0.0", 0))
    tcp.listen()
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    host_ip = socket.gethostbyname(socket.gethostname())
    result = run(
        f"""
        import socket
        for addr in [("127.0.0.1", {tcp.getsockname()[1]}), ("{host_ip}", {tcp.getsockname()[1]})]:
            try:
                socket.create_connection(addr, timeout=1)
                print("TCP CONNECTED", addr)
            except OSError as e:
                print("tcp", addr, e)
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hi", ("127.0.0.1", {udp.getsockname()[1]}))
        except OSError as e:
            print("udp", e)
        try:
            print("DNS RESOLVED", socket.getaddrinfo("example.com", 80))
        except OSError as e:
            print("dns", e)
    """,
        timeout_s=8.0,
    )
    assert "CONNECTED" not in result.stdout and "RESOLVED" not in result.stdout, result.stdout
    with pytest.raises(BlockingIOError):
        tcp.accept()
    with pytest.raises(BlockingIOError):
        udp.recvfrom(16)
    tcp.close()
    udp.close()


@needs_namespaces
def test_loopback_inside_the_sandbox_works_for_the_program_itself() -> None:
    result = run("""
        import socket
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname(), timeout=2)
        conn, _ = server.accept()
        client.sendall(b"ping")
        print(conn.recv(4).decode())
    """)
    assert result.status == "ok" and result.stdout == "ping\n"


@pytest.fixture
def home_secret() -> object:
    """A secret file in the real home directory, removed afterwards."""
    token = secrets.token_hex(16)
    path = Path.home() / f".chatforge-sandbox-secret-{token[:8]}"
    path.write_text(token)
    yield path, token
    path.unlink()


@needs_namespaces
def test_secrets_in_the_home_directory_and_the_project_are_out_of_reach(
    home_secret: tuple[Path, str],
) -> None:
    path, token = home_secret
    relative = os.path.relpath(path, "/tmp/sandbox")
    candidates = [
        str(path),
        relative,
        "../" * 8 + str(path).lstrip("/"),
        f"~/{path.name}",
        str(REPO / "pyproject.toml"),
        str(Path(__file__).resolve()),
    ]
    result = run(f"""
        import os
        for p in {candidates!r}:
            try:
                print("SECRET-READ", p, open(os.path.expanduser(p)).read())
            except OSError as e:
                print("no", p, type(e).__name__)
        print(os.listdir("/root"), os.listdir("/home"), os.path.exists("{REPO}"))
    """)
    assert token not in result.stdout and "SECRET-READ" not in result.stdout, result.stdout
    assert path.name not in result.stdout.splitlines()[-1] and result.stdout.endswith("False\n")


def test_secrets_in_the_environment_are_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    token = secrets.token_hex(16)
    monkeypatch.setenv("CHATFORGE_TEST_API_KEY", token)
    result = run("""
        import os
        print(dict(os.environ))
        for pid in ["self", "1", str(os.getppid())] + [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                print(pid, open(f"/proc/{pid}/environ", "rb").read())
            except OSError as e:
                print(pid, type(e).__name__)
    """)
    assert token not in result.stdout and token not in result.stderr


def test_killing_the_parent_or_its_process_group_leaves_them_alive() -> None:
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        result = run(
            f"""
            import os, signal
            for pid in [os.getppid(), {os.getpid()}, {bystander.pid}, -{os.getpgrp()}, -1]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError as e:
                    print(pid, e)
            os.killpg(os.getpgrp(), signal.SIGKILL)
        """,
            bystanders=(bystander.pid,),
        )
        assert result.status == "error"
        assert bystander.poll() is None
        assert run_program("print('still evaluating')", **LIMITS).stdout == "still evaluating\n"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_flooding_output_is_capped_and_killed(stream: str) -> None:
    result = run(
        f"import sys\nwhile True: sys.{stream}.write('x' * 65536)", max_output_bytes=100_000
    )
    assert result.status == "error" and "output limit" in result.reason
    assert len(getattr(result, stream)) == 100_000 and getattr(result, f"{stream}_truncated")


def test_a_double_forked_daemon_is_killed_when_the_program_exits(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.closerange(0, 3)
                time.sleep(60)
            os._exit(0)
        print("parent done")
    """,
        timeout_s=10.0,
    )
    assert result.status == "ok" and result.stdout == "parent done\n"
    assert time.monotonic() - start < 5.0


@pytest.mark.skipif(os.geteuid() != 0, reason="the weak mode is tested here as root (uid drop)")
def test_the_weak_mode_says_so_and_still_kills_a_daemon() -> None:
    before = set(leftovers())
    result = run_program(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint(os.getuid())",
        isolation="weak",
        **LIMITS,
    )
    assert result.isolation.startswith("weak") and "network reachable" in result.isolation
    assert result.status == "ok"
    assert (int(result.stdout) in SANDBOX_UIDS) == ("fresh uid" in result.isolation)
    assert set(leftovers()) <= before


@needs_namespaces
def test_the_userns_mode_hides_the_home_directory(home_secret: tuple[Path, str]) -> None:
    path, token = home_secret
    before = set(leftovers())
    code = f"import os\ntry:\n    print(open({str(path)!r}).read())\nexcept OSError as e:\n    print(e)\n"
    code += "os.system('umount /root 2>&1; cat " + str(path) + " 2>&1')"
    result = run_program(code, isolation="userns", **LIMITS)
    assert result.isolation == "userns"
    assert token not in result.stdout
    assert set(leftovers()) <= before


def test_the_interpreter_inside_is_this_python() -> None:
    result = run("import sys; print(sys.version_info[:2])")
    assert result.stdout.strip() == str(sys.version_info[:2])
