"""The data stage of `chatforge run`: build the dirty built-in web, clean it, score the cleaning.

The raw inputs go to `run/data/raw/` (WARC crawl, wiki dump, books, code, labels), the
cleaned documents to `run/data/documents-*.parquet` with `funnel.json`, and the stage's
metrics include precision and recall of each removal against the generator's labels, so the
report shows that every cleaning step does what it claims.
"""

from __future__ import annotations

import glob
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from chatforge.config import Config
from chatforge.corpus.web import build_web
from chatforge.corpus.world import World
from chatforge.data.clean import run_data
from chatforge.data.mixture import check_mixture_sources, parse_mixture
from chatforge.data.sources import open_source
from chatforge.errors import InputError
from chatforge.runs import MetricsWriter, RunDir, atomic_write_json
from chatforge.stage import StageResult

# Which removal steps are the right ones for each label of the built-in web.
# "read": the page never became a document (extraction left nothing).
EXPECTED_STEPS = {
    "exact_dup": {"exact_dedup"},
    "near_dup": {"near_dedup"},
    "other_lang": {"language"},
    "spam": {"gopher_repetition", "gopher_quality", "c4", "fineweb", "read"},
    "boilerplate": {"gopher_repetition", "gopher_quality", "c4", "fineweb", "read"},
    "contaminated": {"decontam"},
}
# Spam and boilerplate are judged together: both are what the heuristic filters are for.
CLASSES = {"exact_dup": {"exact_dup"}, "near_dup": {"near_dup"}, "other_lang": {"other_lang"},
           "spam_boilerplate": {"spam", "boilerplate"}, "contaminated": {"contaminated"}}


def outcomes(out_dir: Path) -> dict[str, str]:
    """URL -> 'kept' or the step that removed it, from the output shards and removal logs."""
    result: dict[str, str] = {}
    for path in sorted(glob.glob(str(out_dir / "removed" / "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                result[record["url"]] = record["step"]
    for path in sorted(out_dir.glob("documents-*.parquet")):
        for url in pq.read_table(path, columns=["url"]).column("url").to_pylist():
            result[url] = "kept"
    return result


def score_labels(out_dir: Path, labels_path: Path) -> dict[str, Any]:
    """Precision and recall of each removal class against the built-in web's labels."""
    labels: dict[str, str] = json.loads(Path(labels_path).read_text())["pages"]
    seen = outcomes(out_dir)
    step = {url: seen.get(url, "read") for url in labels}
    scores: dict[str, Any] = {}
    for name, members in CLASSES.items():
        steps = set().union(*(EXPECTED_STEPS[m] for m in members))
        truth = {u for u, lab in labels.items() if lab in members}
        predicted = {u for u in labels if step[u] in steps}
        hit = len(truth & predicted)
        scores[name] = {
            "precision": hit / len(predicted) if predicted else 1.0,
            "recall": hit / len(truth) if truth else 1.0,
            "pages": len(truth),
        }
    clean = [u for u, lab in labels.items() if lab == "clean"]
    scores["clean_kept"] = sum(step[u] == "kept" for u in clean) / max(1, len(clean))
    scores["confusion"] = {f"{lab}->{s}": n for (lab, s), n in
                           sorted(Counter((labels[u], step[u]) for u in labels).items())}
    return scores


def eval_sets_of(run: RunDir) -> list[Path]:
    """Evaluation files of the corpus stage (held-out questions, eval/), to decontaminate against."""
    root = run.corpus
    if not root.is_dir():
        return []
    found = set(root.glob("facts_heldout*.jsonl")) | set(root.glob("eval/**/*.jsonl"))
    return sorted(found)


def run(cfg: Config, run: RunDir) -> StageResult:
    """Generate the dirty web, clean it into run/data, and score the cleaning."""
    out = run.data
    world = World.build(cfg.corpus.seed, cfg.corpus)
    web = build_web(out / "raw", world, seed=cfg.corpus.seed, n_pages=cfg.data.web_pages)
    decontam = web.eval_sets + eval_sets_of(run)
    check_mixture_sources(parse_mixture(cfg.data.mixture), {open_source(s).kind for s in web.sources})
    funnel = run_data(web.sources, out, cfg.data, seed=cfg.corpus.seed, decontam_sets=decontam)
    skipped = skipped_line(funnel["skipped"])
    scores = score_labels(out, web.labels)
    atomic_write_json(out / "label_scores.json", scores)
    metrics_log = MetricsWriter(run.metrics("data"))
    for i, step in enumerate(funnel["steps"]):  # one line per step: the funnel as a curve
        metrics_log.write({"step": i, "name": step, **funnel["total"][step],
                           "seconds": funnel["step_seconds"].get(step, 0.0)})
    total = funnel["total"]
    last = funnel["steps"][-1]
    metrics = {
        "documents_in": total["read"]["docs"], "documents_out": total[last]["docs"],
        "bytes_in": total["read"]["bytes"], "bytes_out": total[last]["bytes"],
        "retention_docs": funnel["retention"]["docs"], "retention_bytes": funnel["retention"]["bytes"],
        "contaminated_items": len(funnel["contaminated_items"]),
        "clean_kept": scores["clean_kept"],
    } | {f"{k}_{m}": scores[k][m] for k in CLASSES for m in ("precision", "recall")}
    worst = min(min(scores[k]["precision"], scores[k]["recall"]) for k in CLASSES)
    return StageResult(
        outputs={"documents": funnel["files"], "funnel": "data/funnel.json",
                 "label_scores": "data/label_scores.json"},
        metrics=metrics,
        summary=(f"{metrics['documents_in']} -> {metrics['documents_out']} documents "
                 f"({metrics['retention_bytes']:.0%} of bytes); worst class P/R {worst:.2f}"
                 + (f"; {skipped}" if skipped else "")),
    )


def skipped_line(skipped: dict[str, dict[str, int]]) -> str:
    """One line for the console: what the readers skipped, by source and reason ("" if none)."""
    parts = [
        f"{kind}: " + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items(), key=lambda r: -r[1]))
        for kind, reasons in sorted(skipped.items())
        if reasons
    ]
    total = sum(n for reasons in skipped.values() for n in reasons.values())
    return f"skipped {total} unreadable records ({'; '.join(parts)}; see funnel.json)" if total else ""


def clean(
    cfg: Config, sources: list[str], out: Path, seed: int, decontam: list[Path],
) -> dict[str, Any]:
    """`chatforge data`: clean the given sources (none: the built-in dirty web) into `out`."""
    labels = None
    if not sources:
        world = World.build(cfg.corpus.seed, cfg.corpus)
        web = build_web(out / "raw", world, seed=seed, n_pages=cfg.data.web_pages)
        sources, labels = web.sources, web.labels
        decontam = [*decontam, *web.eval_sets]
    check_mixture_sources(parse_mixture(cfg.data.mixture), {open_source(s).kind for s in sources})
    funnel = run_data(sources, out, cfg.data, seed=seed, decontam_sets=decontam)
    skipped = skipped_line(funnel["skipped"])
    if funnel["total"]["read"]["docs"] == 0:
        raise InputError(f"{', '.join(sources)}: no record could be read; "
                         + (skipped or "the inputs are empty"))
    summary: dict[str, Any] = {
        "out": str(out), "files": len(funnel["files"]), "total": funnel["total"],
        "retention": funnel["retention"], "contaminated_items": len(funnel["contaminated_items"]),
        "skipped": skipped,
    }
    if labels is not None:
        scores = score_labels(out, labels)
        atomic_write_json(out / "label_scores.json", scores)
        summary["label_scores"] = {k: scores[k] for k in CLASSES} | {"clean_kept": scores["clean_kept"]}
    return summary
