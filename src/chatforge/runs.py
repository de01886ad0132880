"""The run directory: the only state of a chatforge run.

Every file is written atomically (temp file in the same directory, fsync, rename), so a crash
never leaves a half-written checkpoint, shard or manifest. Each stage writes a manifest with
its cache key (hash of its config sections and of the manifests of the stages it reads),
its status, metrics and wall time; `chatforge run` skips a stage whose manifest is complete
with the same key.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatforge.errors import RunDirError

MANIFEST_VERSION = 1


def file_mode() -> int:
    """0o666 less the umask: the mode open() would give, where mkstemp gives 0o600.

    Read from /proc (Linux) because os.umask can only be read by setting it, which races with
    other threads creating files; elsewhere that short set-and-restore is the only way."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to `path`; rename it over `path` only if the block succeeds.

    For writers that want a file name (pyarrow, safetensors, numpy memmaps).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 of files' bytes, in order (a missing file counts as empty): what a stage that
    reads a user's files puts in its key, so editing a file re-runs the stage."""
    h = hashlib.sha256()
    for p in map(Path, paths):
        h.update(b"\0")
        if p.is_file():
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:16]


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The objects of a JSONL file the run itself wrote; a bad line names file and line."""
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: line {i}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise RunDirError(f"{path}: line {i}: not a JSON object")
        rows.append(row)
    return rows


class MetricsWriter:
    """Append-only JSONL of logged steps; each line is flushed so a crash loses at most one."""

    def __init__(self, path: str | os.PathLike[str], truncate_after_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and self.path.exists():
            # On resume, drop lines logged after the checkpoint we resume from.
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= truncate_after_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in keep))
        elif truncate_after_step is None and self.path.exists():
            self.path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")


class RunDir:
    """Paths and manifests of one run directory (docs/architecture.md has the layout)."""

    def __init__(self, root: str | os.PathLike[str], restart: bool = False):
        self.root = Path(root)
        # Train afresh where a stage's checkpoint was made with other settings (--restart),
        # instead of refusing to overwrite it.
        self.restart = restart

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    def checkpoint(self, stage: str) -> Path:
        return self.root / "checkpoints" / stage

    def metrics(self, stage: str) -> Path:
        return self.root / "metrics" / f"{stage}.jsonl"

    def eval(self, stage: str) -> Path:
        return self.root / "eval" / f"{stage}.json"

    @property
    def answers(self) -> Path:
        """The evaluations' remembered answers (chatforge.answer_memo)."""
        return self.root / "cache" / "answers.db"

    def manifest_path(self, stage: str) -> Path:
        return self.root / "manifests" / f"{stage}.json"

    def manifest(self, stage: str) -> dict[str, Any] | None:
        path = self.manifest_path(stage)
        return read_json(path) if path.exists() else None

    def is_complete(self, stage: str, key: str) -> bool:
        m = self.manifest(stage)
        return bool(m and m.get("status") == "complete" and m.get("key") == key)

    def write_manifest(
        self,
        stage: str,
        key: str,
        status: str,
        started: float,
        outputs: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        device: str = "cpu",
        n_devices: int = 1,
        device_name: str = "",
    ) -> dict[str, Any]:
        """Record a stage's result: key, status, inputs, outputs, metrics, wall time, host."""
        wall = time.time() - started
        manifest = {
            "version": MANIFEST_VERSION,
            "stage": stage,
            "key": key,
            "status": status,
            "inputs": inputs or {},
            "outputs": outputs or {},
            "metrics": metrics or {},
            "started": started,
            "wall_s": wall,
            "device": device,
            "device_name": device_name,  # e.g. "NVIDIA H100 80GB HBM3": the cost reader's key
            "n_devices": n_devices,
            "device_hours": wall * n_devices / 3600,
            "host": socket.gethostname(),
        }
        atomic_write_json(self.manifest_path(stage), manifest)
        return manifest

    def link_latest(self) -> None:
        """Point `<parent>/latest` at this run when the run has another name."""
        latest = self.root.parent / "latest"
        if latest.resolve() == self.root.resolve():
            return
        if latest.is_symlink():
            latest.unlink()
        if not latest.exists():
            latest.symlink_to(self.root.name)
