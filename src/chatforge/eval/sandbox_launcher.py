"""The process that `chatforge.eval.sandbox` starts around each untrusted program.

Run as `python -I -S -B sandbox_launcher.py STATUS_FD` with a JSON config on stdin, either as
PID 1 of fresh network, mount and PID namespaces (made by util-linux `unshare`) or, in the weak
mode, as a plain child. It joins the run's cgroups, hides the user's files behind tmpfs mounts,
makes every other mount read-only, then forks the program under its own uid and rlimits and
reports its exit status as one JSON line on STATUS_FD. Standard library only: `-I -S` leaves no
site-packages, and this file must not import chatforge (the project is hidden from it).
"""

import ctypes
import fcntl
import json
import os
import re
import resource
import signal
import socket
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
# Per-mount flags a read-only bind remount must repeat, or it would clear them.
_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
}
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_LIBC.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


class SetupError(Exception):
    """The sandbox could not be built; the program never ran."""


def _bytes(text: "str | None") -> "bytes | None":
    return None if text is None else os.fsencode(text)


def _mount(
    source: "str | None", target: str, fstype: "str | None", flags: int, data: "str | None" = None
) -> None:
    if _LIBC.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _prctl(option: int, value: int) -> None:
    if _LIBC.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _mount_points() -> "list[tuple[str, list[str]]]":
    """Mount points of this namespace with their per-mount options, from /proc/self/mountinfo."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            points.append((target, fields[5].split(",")))
    return points


def build_filesystem(cfg: dict) -> None:
    """Private mounts: hidden paths behind empty read-only tmpfs, a size-limited /tmp, the rest read-only."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below may propagate back to the host
    # The interpreter may live under a hidden path (pyenv under /root): keep a handle on it
    # before it is covered, and bind it back on top of the tmpfs afterwards.
    kept = {path: os.open(path, os.O_PATH) for path in cfg["keep"]}
    for path in cfg["hide"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=755")
        else:  # a file at the top level (/container_info.json): an empty device on top
            _mount("/dev/null", path, None, MS_BIND)
    for path, fd in kept.items():
        if any(_under(path, hidden) for hidden in cfg["hide"]):
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    size = f"size={cfg['disk_mb']}m,nr_inodes=4096,mode=1777"
    for path in ("/tmp", "/dev/shm"):
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, size)
    for target, options in _mount_points():
        if target in ("/tmp", "/dev/shm") or _under(target, "/proc") or _under(target, "/dev"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(_OPTION_FLAGS.get(o, 0) for o in options)
        try:
            _mount(None, target, None, flags)
        except FileNotFoundError:
            continue  # a mount point now covered by one of the tmpfs mounts above


def loopback_up() -> None:
    """Bring up `lo` in the new network namespace: local servers work, and it has no route out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def prepare_workdir(cfg: dict) -> None:
    """The fresh working directory with HOME inside it and the program file, owned by the sandbox uid."""
    workdir, uid = cfg["workdir"], cfg["uid"]
    os.makedirs(os.path.join(workdir, "home"), mode=0o700, exist_ok=True)
    with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
        f.write(cfg["code"])
    if uid is not None:
        for path in (workdir, os.path.join(workdir, "home"), os.path.join(workdir, "main.py")):
            os.chown(path, uid, uid)
    os.chmod(workdir, 0o700)


def join_cgroups(paths: "list[str]") -> None:
    """Move this process (and so every descendant) into the run's memory and pids cgroups."""
    for path in paths:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def exec_program(cfg: dict) -> None:
    """In the forked child: limits, drop to the sandbox uid, no new privileges, exec Python."""
    os.setsid()
    os.chdir(cfg["workdir"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # the status pipe above all
    cpu = int(cfg["timeout_s"]) + 1
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (cfg["memory_mb"] << 20,) * 2,
        resource.RLIMIT_FSIZE: (cfg["disk_mb"] << 20,) * 2,
        resource.RLIMIT_NPROC: (cfg["max_processes"],) * 2,
        resource.RLIMIT_NOFILE: (256, 256),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_MEMLOCK: (0, 0),
    }
    for which, value in limits.items():
        resource.setrlimit(which, value)
    if cfg["drop_caps"]:
        # userns mode: the program stays root of its namespace; with an empty bounding set
        # its exec gains no capabilities, so it can neither unmount the hiding tmpfs nor
        # read this launcher's file descriptors.
        with open("/proc/sys/kernel/cap_last_cap") as f:
            for cap in range(int(f.read()) + 1):
                _prctl(PR_CAPBSET_DROP, cap)
    uid = cfg["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setresuid, which clears it
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGALRM, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.path.join(cfg["workdir"], "home")}
    python = cfg["python"]
    os.execve(python, [python, "-I", "-S", "-B", "main.py"], env)


def kill_uid(uid: int) -> None:
    """Kill every process of the sandbox uid with one kill(-1) made as that uid (no fork race)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def kill_descendants() -> None:
    """Weak mode: kill and reap what was reparented to us as subreaper, until nothing is left."""
    while True:
        try:
            children = [
                int(pid)
                for tid in os.listdir("/proc/self/task")
                for pid in open(f"/proc/self/task/{tid}/children").read().split()
            ]
        except OSError:
            return  # a kernel without /proc/PID/task/TID/children: the uid kill is all we have
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def supervise(cfg: dict, child: int) -> "int | None":
    """Reap every process (orphans come to us as PID 1 or subreaper) until the program exits."""

    def on_timeout(signum: int, frame: object) -> None:
        raise TimeoutError

    # The parent enforces the wall-clock limit; this is the backstop if the parent dies.
    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, cfg["timeout_s"] + 2.0)
    try:
        while True:
            pid, status = os.wait()
            if pid == child:
                return os.waitstatus_to_exitcode(status)
    except TimeoutError:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            os.kill(-child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not cfg["namespaces"]:
            if cfg["uid"] is not None:
                kill_uid(cfg["uid"])
            kill_descendants()


def main() -> None:
    status = os.fdopen(int(sys.argv[1]), "w")
    cfg = json.load(sys.stdin)
    try:
        join_cgroups(cfg["cgroups"])
        if cfg["drop_caps"]:
            _prctl(PR_SET_DUMPABLE, 0)
        if cfg["namespaces"]:
            build_filesystem(cfg)
            loopback_up()
        else:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
        prepare_workdir(cfg)
    except OSError as e:
        status.write(json.dumps({"setup_error": str(e)}) + "\n")
        sys.exit(1)
    status.write(json.dumps({"started": True}) + "\n")
    status.flush()
    child = os.fork()
    if child == 0:
        try:
            exec_program(cfg)
        except BaseException as e:  # the program never ran: say why on its stderr
            os.write(2, f"sandbox: cannot start the program: {e}\n".encode())
        os._exit(126)
    status.write(json.dumps({"returncode": supervise(cfg, child)}) + "\n")
    status.flush()
    os._exit(0)  # as PID 1, our exit makes the kernel kill whatever is left in the namespace


if __name__ == "__main__":
    main()
