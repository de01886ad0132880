"""Shared fixtures. Real public data lives in ../shared/data beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; tests using it skip cleanly where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test if it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


def chatforge_cli(*args: str, env: dict | None = None, timeout: float = 1800, cwd=None):
    """`python -m chatforge ARGS` in a subprocess (wide console, so one-line messages stay whole)."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "chatforge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One `chatforge run --preset smoke` for the whole session (every stage on a tiny model).
    Tests read it; a test that changes a run works on a copy (`copy_run`)."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    done = chatforge_cli("run", "--preset", "smoke", "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr[-4000:]
    (run_dir / "run.log").write_text(done.stderr)
    (run_dir / "run.json").write_text(done.stdout.strip().splitlines()[-1])
    return run_dir


def copy_run(src: Path, dst: Path) -> Path:
    """A private copy of a run directory (links resolved), for tests that change it."""
    import shutil

    shutil.copytree(src, dst, symlinks=False)
    return dst


def sharpened_gpt(scale: float, seed: int = 0, **dims):
    """A random GPT (GPTConfig(**dims)) whose matrices are scaled by `scale`: greedy outputs
    then vary from step to step and log-probabilities lie far from uniform. In eval mode."""
    import torch

    from chatforge.model.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(**dims))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(scale)
    return model.eval()
