"""The stage contract, in a leaf module every stage can import without importing the others.

A stage is a function `(config, run_dir) -> StageResult`: it reads artifacts from the run
directory, writes new ones, and returns what it wrote, its metrics and a one-line summary.
`chatforge.pipeline` lists the stages and chains them with caching and resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the leaf imports nothing at run time
    from chatforge.config import Config
    from chatforge.runs import RunDir


@dataclass
class StageResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # one line printed when the stage ends
    device: str = "cpu"
    n_devices: int = 1


@dataclass(frozen=True)
class Stage:
    """A named stage: its function, the config sections and user files its cache key hashes,
    the stages whose outputs it reads, whether it is on, and whether every rank of a torchrun
    job runs it."""

    name: str
    fn: Callable[[Config, RunDir], StageResult]
    sections: tuple[str, ...]
    needs: tuple[str, ...] = ()
    enabled: Callable[[Config], bool] = lambda cfg: True
    help: str = ""
    distributed: bool = False  # True: all ranks run it together; False: rank 0 alone
    files: Callable[[Config], list[str]] = lambda cfg: []  # user files whose bytes join the key
    # Seconds of its work outside a training budget (generation, evaluation, I/O) in the cpu
    # preset on the machine the preset was sized on; a run budget scales them (RunClock).
    untimed_s: float = 0.0
