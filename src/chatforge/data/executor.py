"""Where cleaning runs: a local process pool or Ray Data, behind the same two operations.

- `map(fn, items)`: run a picklable function on each item in parallel; results in item order.
- `group_edges(emit, items, partitions, work)`: the dedup shuffle. `emit(item)` returns rows
  (band, key, order); rows are grouped by (band, key) and each group becomes edges from its
  smallest order to the others (`dedup.group_edges`). Locally the rows are hash-partitioned
  by key into files on disk and each partition is grouped by its own task; on Ray they go
  through Ray Data's `groupby(...).map_groups`, the engine's shuffle. Either way no process
  holds all buckets, and the edges are the same set, so the kept documents are the same.

Work files live under the run's output directory, which a Ray cluster must share.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from chatforge.data.dedup import group_edges, partition_of
from chatforge.errors import ConfigError

Rows = dict[str, np.ndarray]  # "band" int64, "key" uint64, "order" int64


class LocalExecutor:
    """A process pool (default: all cores); one worker runs everything in this process."""

    name = "local"

    def __init__(self, workers: int = 0, progress: bool = True):
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: workers never inherit threads (rich, pyarrow) from this process.
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self._pool

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], desc: str = "") -> list[Any]:
        if self.workers == 1 or len(items) <= 1:
            return [fn(item) for item in items]
        pool = self._get_pool()
        futures = [pool.submit(fn, item) for item in items]
        if self.progress and desc:
            with Progress(transient=True) as bar:
                task = bar.add_task(desc, total=len(futures))
                for fut in futures:
                    fut.result()
                    bar.advance(task)
        return [f.result() for f in futures]

    def group_edges(
        self, emit: Callable[[Any], Rows], items: Sequence[Any], partitions: int, work: Path,
    ) -> np.ndarray:
        shutil.rmtree(work, ignore_errors=True)
        self.map(
            functools.partial(_emit_partitioned, emit, work, partitions),
            list(enumerate(items)), desc="dedup signatures",
        )
        parts = self.map(functools.partial(_reduce_partition, work), list(range(partitions)))
        shutil.rmtree(work, ignore_errors=True)
        return np.concatenate([np.empty((0, 2), np.int64), *parts])


def _emit_partitioned(emit: Callable[[Any], Rows], work: Path, partitions: int, item: tuple[int, Any]) -> None:
    """Map side of the local shuffle: split one item's rows by key hash into partition files."""
    i, payload = item
    rows = emit(payload)
    part = partition_of(rows["key"], partitions)
    for p in np.unique(part).tolist():
        mask = part == p
        folder = work / f"part-{p:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / f"{i:06d}.npz", **{k: v[mask] for k, v in rows.items()})


def _reduce_partition(work: Path, p: int) -> np.ndarray:
    """Reduce side: group one partition's rows (every row of its keys is here)."""
    files = sorted((work / f"part-{p:05d}").glob("*.npz"))
    if not files:
        return np.empty((0, 2), np.int64)
    loaded = [np.load(f) for f in files]
    cols = {k: np.concatenate([z[k] for z in loaded]) for k in ("band", "key", "order")}
    return group_edges(cols["band"], cols["key"], cols["order"])


class RayExecutor:
    """Ray Data: `ray.init(address=...)` (a cluster) or a local Ray when none is running."""

    name = "ray"

    def __init__(self, address: str = "", workers: int = 0):
        import ray
        from ray.data import DataContext

        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            elif workers:
                kwargs["num_cpus"] = workers
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ConfigError(f"data.ray_address={address!r}: cannot connect to Ray: {exc}") from None
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        import ray

        if self._owns and ray.is_initialized():
            ray.shutdown()
            self._owns = False

    def _dataset(self, items: Sequence[Any]) -> Any:
        import ray

        rows = [{"i": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
        return ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], desc: str = "") -> list[Any]:
        if not items:
            return []

        def apply(row: dict[str, Any]) -> dict[str, Any]:
            return {"i": row["i"], "result": pickle.dumps(fn(pickle.loads(row["item"])))}

        out = sorted(self._dataset(items).map(apply).take_all(), key=lambda r: r["i"])
        return [pickle.loads(r["result"]) for r in out]

    def group_edges(
        self, emit: Callable[[Any], Rows], items: Sequence[Any], partitions: int, work: Path,
    ) -> np.ndarray:
        if not items:
            return np.empty((0, 2), np.int64)

        def emit_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            rows = [emit(pickle.loads(blob)) for blob in batch["item"]]
            out = {k: np.concatenate([r[k] for r in rows]) for k in ("band", "key", "order")}
            out["key"] = out["key"].view(np.int64)  # Arrow-friendly; equality is unchanged
            return out

        def edges_of_group(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            edges = group_edges(group["band"], group["key"].view(np.uint64), group["order"])
            return {"first": edges[:, 0], "other": edges[:, 1]}

        rows = (
            self._dataset(items)
            .map_batches(emit_batch, batch_size=1, batch_format="numpy")
            .repartition(partitions)
            .groupby(["band", "key"])
            .map_groups(edges_of_group, batch_format="numpy")
            .take_all()
        )
        if not rows:
            return np.empty((0, 2), np.int64)
        return np.array([[r["first"], r["other"]] for r in rows], dtype=np.int64)


def make_executor(kind: str, workers: int = 0, address: str = "") -> LocalExecutor | RayExecutor:
    """The executor named by `data.executor`."""
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, workers)
    raise ConfigError(f"data.executor={kind!r}: choose local or ray")
