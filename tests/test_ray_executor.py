"""Ray Data runs the same steps and the same dedup grouping: identical output to the pool."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from chatforge.config import CorpusConfig, DataConfig
from chatforge.corpus.web import build_web
from chatforge.corpus.world import World
from chatforge.data.clean import run_data
from chatforge.data.dedup import group_edges
from chatforge.data.executor import LocalExecutor, RayExecutor

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    # Ray workers cannot import this test module; ship its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 300
    return {"band": rng.integers(0, 3, n), "key": rng.integers(0, 40, n).astype(np.uint64),
            "order": rng.permutation(10_000)[:n].astype(np.int64) + seed * 10_000}


def _edge_set(edges: np.ndarray) -> set[tuple[int, int]]:
    return {tuple(e) for e in edges.tolist()}


def test_ray_groupby_matches_local_partitions(local_ray, tmp_path):
    items = [0, 1, 2]
    everything = {k: np.concatenate([_rows(i)[k] for i in items]) for k in ("band", "key", "order")}
    reference = _edge_set(group_edges(everything["band"], everything["key"], everything["order"]))
    local = LocalExecutor(workers=1).group_edges(_rows, items, partitions=4, work=tmp_path / "w")
    with RayExecutor() as ex:
        on_ray = ex.group_edges(_rows, items, partitions=4, work=tmp_path / "r")
        assert ex.map(abs, [-3, 2, -1]) == [3, 2, 1]
    assert _edge_set(local) == reference == _edge_set(on_ray)
    assert ray.is_initialized()  # the executor leaves a Ray it did not start running


def test_ray_executor_output_identical_to_local(local_ray, tmp_path):
    web = build_web(tmp_path / "raw", World.build(0, CorpusConfig()), seed=0, n_pages=240)
    runs = {}
    for kind in ("local", "ray"):
        cfg = DataConfig(executor=kind, workers=1 if kind == "local" else 0, partitions=3)
        runs[kind] = run_data(web.sources, tmp_path / kind, cfg, seed=7, decontam_sets=web.eval_sets)
    local, on_ray = runs["local"], runs["ray"]
    assert on_ray["executor"] == "ray" and local["executor"] == "local"
    for key in ("total", "per_source", "removed", "contamination", "files"):
        assert local[key] == on_ray[key], key
    assert local["total"]["near_dedup"]["docs"] < local["total"]["exact_dedup"]["docs"]
    for name in local["files"]:
        assert pq.read_table(tmp_path / "local" / name).equals(pq.read_table(tmp_path / "ray" / name))
