"""`run_data`: sources -> cleaning steps -> dedup -> decontamination -> Parquet + funnel.json.

Four phases, each a parallel map or shuffle on the executor:
1. filter: each read task (one source spec; globs become one task per file) streams its
   documents in batches through normalize, language, Gopher repetition/quality, C4 and FineWeb,
   and writes the survivors to shard files. Every document gets an order key
   (`order_key(task, position)`, pieces of a split document next) that fixes which copy of a
   duplicate is kept, whatever the executor.
2. exact dedup: (key = hash of the text) rows shuffled by key, grouped, clusters closed.
3. near dedup: MinHash band rows of the documents not already removed, shuffled and grouped
   the same way.
4. final: per shard, drop the duplicates, decontaminate, mask PII, apply the per-source
   mixture weights (`data.mixture`, see chatforge.data.mixture) and write
   `documents-*.parquet` (id, source, url, text, language, metadata json) atomically.
`funnel.json` has documents and bytes per source after every step, removals per reason, the
contaminated benchmark items and what the sources skipped. Removed documents are logged, one
JSON line each, under `removed/`, written by the workers so the driver stays small.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from chatforge.config import DataConfig
from chatforge.data.decontam import ContaminationIndex, build_index
from chatforge.data.dedup import MinHasher, clusters_to_remove, exact_keys
from chatforge.data.document import Document
from chatforge.data.executor import make_executor
from chatforge.data.mixture import mixture_report, mixture_steps
from chatforge.data.steps import (
    LANGUAGE_KEY,
    ORDER_KEY,
    Step,
    StepStats,
    filter_steps,
    final_steps,
    nbytes,
    order_key,
)
from chatforge.runs import atomic_path, atomic_write_text

_GLOB_CHARS = set("*?[")
_WORKER_BYTES = 3 << 29  # memory to budget per local worker (1.5 GiB)
SHARD_SCHEMA = pa.schema(
    [("id", pa.string()), ("source", pa.string()), ("url", pa.string()), ("text", pa.string()),
     ("language", pa.string()), ("metadata", pa.string())]
)


def expand_sources(specs: list[str]) -> list[str]:
    """One read task per file of a globbed spec (so files read in parallel), else the spec."""
    from chatforge.data.sources import parse_spec
    from chatforge.data.sources.base import expand_paths

    tasks = []
    for spec in specs:
        kind, path, field = parse_spec(spec)
        if kind != "hf" and _GLOB_CHARS & set(path):
            suffix = f":{field}" if field else ""
            tasks += [f"{kind}:{p}{suffix}" for p in expand_paths(path, kind)]
        else:
            tasks.append(spec)
    return tasks


# --- shard files ---------------------------------------------------------------------------


def write_shard(path: Path, docs: list[Document], keep_order: bool) -> None:
    """Write documents as one Parquet file atomically; the order key stays only in work shards."""
    rows: dict[str, list[str]] = {name: [] for name in SHARD_SCHEMA.names}
    for d in docs:
        meta = dict(d.metadata)
        language = str(meta.pop(LANGUAGE_KEY, "") or "")
        if not keep_order:
            meta.pop(ORDER_KEY, None)
        rows["id"].append(d.id)
        rows["source"].append(d.source)
        rows["url"].append(d.url)
        rows["text"].append(d.text)
        rows["language"].append(language)
        rows["metadata"].append(json.dumps(meta, sort_keys=True, default=str, ensure_ascii=False))
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(rows, schema=SHARD_SCHEMA), tmp)


def read_shard(path: Path) -> list[Document]:
    """Documents of a shard written by `write_shard`."""
    docs = []
    for row in pq.read_table(path).to_pylist():
        meta = json.loads(row["metadata"])
        if row["language"]:
            meta[LANGUAGE_KEY] = row["language"]
        docs.append(Document(row["id"], row["source"], row["text"], row["url"], meta))
    return docs


def _append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    if records:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


# --- phase functions (run on workers) -----------------------------------------------------------


def _run_logged(
    steps: list[Step], docs: list[Document], log: list[dict[str, Any]],
) -> tuple[list[Document], list[StepStats]]:
    """Apply steps in order to one batch, recording every removed document with its reason."""
    all_stats = []
    for step in steps:
        docs, stats = step(docs)
        log.extend(
            {"step": step.name, "reason": reason, "id": d_id, "source": src, "url": url}
            for reason, (d_id, src, url) in stats.removed_log
        )
        stats.removed_log = []
        all_stats.append(stats)
    return docs, all_stats


def filter_task(item: tuple[int, str], cfg: DataConfig, work: Path, removed_dir: Path) -> dict[str, Any]:
    """Phase 1 for one read task: stream, filter in batches, write surviving shards."""
    from chatforge.data.sources import open_source

    task, spec = item
    source = open_source(spec, extractor=cfg.extractor)
    steps = filter_steps(cfg)
    read = StepStats("read")
    totals = [StepStats(s.name) for s in steps]
    shards: list[dict[str, Any]] = []
    pending: list[Document] = []
    batch: list[Document] = []
    log_path = removed_dir / f"t{task:05d}-filter.jsonl"
    log_path.unlink(missing_ok=True)

    def flush_batch() -> None:
        log: list[dict[str, Any]] = []
        kept, stats = _run_logged(steps, batch, log)
        for total, s in zip(totals, stats, strict=True):
            total.merge(s)
        _append_jsonl(log_path, log)
        pending.extend(kept)
        batch.clear()

    def flush_shard() -> None:
        path = work / f"t{task:05d}-{len(shards):04d}.parquet"
        write_shard(path, pending, keep_order=True)
        orders = [d.metadata[ORDER_KEY] for d in pending]
        shards.append({"path": str(path), "docs": len(pending), "first": min(orders), "last": max(orders)})
        pending.clear()

    start = time.perf_counter()
    for position, doc in enumerate(source.iter_documents()):
        doc = dataclasses.replace(doc, metadata={**doc.metadata, ORDER_KEY: order_key(task, position)})
        read.docs_out[doc.source] += 1
        read.bytes_out[doc.source] += nbytes(doc)
        batch.append(doc)
        if len(batch) >= cfg.batch_docs:
            flush_batch()
        if len(pending) >= cfg.shard_docs:
            flush_shard()
    if batch:
        flush_batch()
    if pending:
        flush_shard()
    read.seconds = time.perf_counter() - start - sum(t.seconds for t in totals)  # reader + extraction
    return {"task": task, "spec": spec, "kind": source.kind, "read": read, "stats": totals,
            "shards": shards, "skipped": dict(source.skipped)}


def _live_docs(path: str, drop: frozenset[int]) -> list[Document]:
    return [d for d in read_shard(Path(path)) if d.metadata[ORDER_KEY] not in drop]


def emit_exact(item: tuple[str, frozenset[int]]) -> dict[str, np.ndarray]:
    """Exact-dedup rows of one shard: one (0, text hash, order) row per document."""
    docs = _live_docs(*item)
    orders = np.array([d.metadata[ORDER_KEY] for d in docs], dtype=np.int64)
    return {"band": np.zeros(len(docs), np.int64), "key": exact_keys(d.text for d in docs), "order": orders}


def emit_minhash(item: tuple[str, frozenset[int]], hasher: MinHasher) -> dict[str, np.ndarray]:
    """Near-dedup rows of one shard: (band, band key, order) for every band of every document."""
    docs = _live_docs(*item)
    keys = hasher.band_keys(hasher.signatures(d.text for d in docs))
    orders = np.array([d.metadata[ORDER_KEY] for d in docs], dtype=np.int64)
    return {
        "band": np.tile(np.arange(hasher.bands, dtype=np.int64), len(docs)),
        "key": keys.ravel(),
        "order": np.repeat(orders, hasher.bands),
    }


def final_task(
    item: tuple[dict[str, Any], dict[int, int], dict[int, int]], cfg: DataConfig,
    index: ContaminationIndex, out_dir: Path, removed_dir: Path, seed: int,
) -> dict[str, Any]:
    """Phase 4 for one shard: drop duplicates, decontaminate, mask PII, mix, write the output shard."""
    shard, exact, near = item
    path = Path(shard["path"])
    steps = final_steps(cfg, exact, near, index) + mixture_steps(cfg, seed)
    log: list[dict[str, Any]] = []
    stats: list[StepStats] = []
    kept: list[Document] = []
    docs = read_shard(path)
    for start in range(0, len(docs), cfg.batch_docs):
        batch_kept, batch_stats = _run_logged(steps, docs[start : start + cfg.batch_docs], log)
        kept += batch_kept
        stats = batch_stats if not stats else [a.merge(b) for a, b in zip(stats, batch_stats, strict=True)]
    log_path = removed_dir / f"{path.stem}-final.jsonl"
    log_path.unlink(missing_ok=True)
    _append_jsonl(log_path, log)
    out_path = None
    if kept:
        out_path = out_dir / f"documents-{path.stem.lstrip('t')}.parquet"
        write_shard(out_path, kept, keep_order=False)
    return {"stats": stats, "out": str(out_path) if out_path else None, "docs": len(kept)}


# --- driver -------------------------------------------------------------------------------------


def _subset(mapping: dict[int, int], shard: dict[str, Any]) -> dict[int, int]:
    return {k: v for k, v in mapping.items() if shard["first"] <= k <= shard["last"]}


def run_data(
    sources: list[str],
    out_dir: str | Path,
    cfg: DataConfig,
    seed: int = 0,
    decontam_sets: list[str | Path] | tuple[str | Path, ...] = (),
    console: Console | None = None,
) -> dict[str, Any]:
    """Clean `sources` into `out_dir`; return (and write) the funnel."""
    from chatforge.data.sources import open_source

    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    tasks = expand_sources(sources)
    for spec in tasks:
        open_source(spec, extractor=cfg.extractor)  # fail fast, in the driver, on a missing path or unknown kind
    index = build_index(list(decontam_sets), cfg.decontam_ngram, cfg.decontam_min_words)
    work, removed_dir = out_dir / ".work", out_dir / "removed"
    for stale in [work, removed_dir]:
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out_dir.glob("documents-*.parquet"):
        stale.unlink()
    hasher = MinHasher(cfg.minhash_bands, cfg.minhash_rows, cfg.minhash_ngram, seed)

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(phase: str, detail: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[phase] = round(now - clock, 3)
        clock = now
        console.print(f"  {phase}: {detail} ({timings[phase]:.1f}s)")

    workers = cfg.workers
    if cfg.executor == "local":
        # Each worker loads its own language models (about 1 GB with all of lingua's
        # languages): never more local workers than read tasks, and when the number is left
        # to us (0), no more than the free memory holds. The output is the same either way.
        workers = min(cfg.workers or os.cpu_count() or 1, max(1, len(tasks)))
        if not cfg.workers:
            workers = max(1, min(workers, int(psutil.virtual_memory().available // _WORKER_BYTES)))
    with make_executor(cfg.executor, workers, cfg.ray_address) as ex:
        console.print(f"data: {len(tasks)} read task(s) on the {ex.name} executor")
        filtered = ex.map(
            functools.partial(filter_task, cfg=cfg, work=work / "filtered", removed_dir=removed_dir),
            list(enumerate(tasks)), desc="read + filter",
        )
        shards = [s for r in filtered for s in r["shards"]]
        lap("read_filter", f"{sum(s['docs'] for s in shards)} documents left in {len(shards)} shard(s)")
        exact_edges = ex.group_edges(
            emit_exact, [(s["path"], frozenset()) for s in shards], cfg.partitions, work / "exact",
        )
        exact = clusters_to_remove(exact_edges)
        lap("exact_dedup", f"{len(exact)} exact duplicates")
        near_items = [(s["path"], frozenset(_subset(exact, s))) for s in shards]
        near_edges = ex.group_edges(
            functools.partial(emit_minhash, hasher=hasher), near_items, cfg.partitions, work / "near",
        )
        near = clusters_to_remove(near_edges)
        lap("near_dedup", f"{len(near)} near duplicates")
        finals = ex.map(
            functools.partial(final_task, cfg=cfg, index=index, out_dir=out_dir, removed_dir=removed_dir,
                              seed=seed),
            [(s, _subset(exact, s), _subset(near, s)) for s in shards], desc="dedup + decontam",
        )
        lap("final", f"{sum(r['docs'] for r in finals)} documents written")
        executor_name = ex.name
    shutil.rmtree(work, ignore_errors=True)

    funnel = build_funnel(filtered, finals, cfg)
    funnel.update({
        "executor": executor_name, "seed": seed, "sources": sources, "tasks": len(tasks),
        "minhash": {"bands": hasher.bands, "rows": hasher.rows, "ngram": hasher.ngram,
                    "threshold": round(hasher.threshold(), 4)},
        "decontam": {"ngram": index.n, "items": len(index), "short_items_skipped": index.skipped_short},
        "files": sorted(r["out"].rsplit("/", 1)[-1] for r in finals if r["out"]),
        "timings_s": timings,
    })
    if cfg.mixture:
        funnel["mixture"] = mixture_report(funnel, cfg, seed)
    # Not atomic_write_json: it sorts keys, and the funnel reads best in step order.
    atomic_write_text(out_dir / "funnel.json", json.dumps(funnel, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "contamination.json", json.dumps(funnel["contamination"], indent=2) + "\n")
    return funnel


def build_funnel(filtered: list[dict[str, Any]], finals: list[dict[str, Any]], cfg: DataConfig) -> dict[str, Any]:
    """Merge per-task statistics into the funnel: per source and step, removals per reason."""
    read = StepStats("read")
    merged: dict[str, StepStats] = {}
    skipped: dict[str, Counter[str]] = {}
    for r in filtered:
        read.merge(r["read"])
        skipped.setdefault(r["kind"], Counter()).update(r["skipped"])
        for s in r["stats"]:
            merged.setdefault(s.step, StepStats(s.step)).merge(s)
    for r in finals:
        for s in r["stats"]:
            merged.setdefault(s.step, StepStats(s.step)).merge(s)
    step_names = [s.name for s in filter_steps(cfg)] + ["exact_dedup", "near_dedup", "decontam"]
    step_names += ["pii"] if cfg.pii_masking else []
    cleaned = step_names[-1]  # retention measures the cleaning, not the mixture's repeats
    step_names += ["mixture"] if cfg.mixture else []
    order = [("read", read)] + [(n, merged.get(n, StepStats(n))) for n in step_names]
    sources = sorted(set(read.docs_out) | set(skipped))
    per_source = {
        src: {name: {"docs": st.docs_out[src], "bytes": st.bytes_out[src]} for name, st in order}
        for src in sources
    }
    total = {name: {"docs": sum(st.docs_out.values()), "bytes": sum(st.bytes_out.values())} for name, st in order}
    removed = {
        name: {
            reason: {"docs": sum(st.removed_docs[reason].values()),
                     "bytes": sum(st.removed_bytes[reason].values()),
                     "by_source": dict(sorted(st.removed_docs[reason].items()))}
            for reason in sorted(st.removed_docs)
        }
        for name, st in order[1:]
    }
    first, last = total["read"], total[cleaned]
    contamination = sorted(
        (f for _, st in order if st.step == "decontam" for f in st.findings),
        key=lambda f: (f["benchmark"], f["item"], f["id"]),
    )
    return {
        "steps": [name for name, _ in order],
        "per_source": per_source,
        "total": total,
        "removed": removed,
        "notes": {name: dict(sorted(st.notes.items())) for name, st in order if st.notes},
        "skipped": {k: dict(sorted(v.items())) for k, v in sorted(skipped.items()) if v},
        "retention": {
            "docs": last["docs"] / first["docs"] if first["docs"] else 0.0,
            "bytes": last["bytes"] / first["bytes"] if first["bytes"] else 0.0,
        },
        "contamination": contamination,
        "contaminated_items": sorted({(f["benchmark"], f["item"]) for f in contamination}),
        # Seconds inside each step, summed over workers ("read": reader and HTML extraction).
        "step_seconds": {name: round(st.seconds, 4) for name, st in order},
    }
