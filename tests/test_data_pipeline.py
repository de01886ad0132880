"""The data stage end to end on the built-in dirty web, scored against the generator's labels."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from chatforge.cli import app
from chatforge.config import CorpusConfig, DataConfig
from chatforge.corpus.web import build_web
from chatforge.corpus.world import World
from chatforge.data.clean import expand_sources, run_data
from chatforge.data.stage import CLASSES, outcomes, score_labels
from chatforge.errors import InputError
from chatforge.pipeline import stage_names

PAGES = 600


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    return build_web(root / "raw", World.build(0, CorpusConfig()), seed=0, n_pages=PAGES)


@pytest.fixture(scope="module")
def cleaned(web):
    out = web.root.parent / "out"
    funnel = run_data(web.sources, out, DataConfig(workers=1), seed=0, decontam_sets=web.eval_sets)
    return out, funnel


def test_removals_match_labels(web, cleaned):
    out, _ = cleaned
    scores = score_labels(out, web.labels)
    for name in CLASSES:
        assert scores[name]["pages"] > 0
        assert scores[name]["precision"] >= 0.95, (name, scores[name], scores["confusion"])
        assert scores[name]["recall"] >= 0.95, (name, scores[name], scores["confusion"])
    assert scores["clean_kept"] >= 0.95, scores["confusion"]


def test_turkish_and_english_clean_pages_survive(web, cleaned):
    out, _ = cleaned
    labels = json.loads(web.labels.read_text())
    seen = outcomes(out)
    for lang in ("en", "tr"):
        clean = [u for u, lab in labels["pages"].items() if lab == "clean" and labels["languages"][u] == lang]
        assert len(clean) > 50
        assert sum(seen.get(u) == "kept" for u in clean) / len(clean) >= 0.95, lang


def test_funnel_counts_every_step_per_source(web, cleaned):
    out, funnel = cleaned
    on_disk = json.loads((out / "funnel.json").read_text())
    assert on_disk["total"] == funnel["total"]
    steps = funnel["steps"]
    assert steps[0] == "read" and steps[-1] == "pii"
    assert {"language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "exact_dedup",
            "near_dedup", "decontam"} <= set(steps)
    assert set(funnel["per_source"]) == {"warc", "wiki", "books", "code"}
    for source, counts in funnel["per_source"].items():
        assert list(counts) == steps
        docs = [counts[s]["docs"] for s in steps]
        assert docs == sorted(docs, reverse=True), source  # steps only ever remove documents
    # What each step removed, per reason, adds up to the drop in the totals.
    for prev, step in zip(steps, steps[1:], strict=False):
        removed = sum(r["docs"] for r in funnel["removed"][step].values())
        assert funnel["total"][prev]["docs"] - funnel["total"][step]["docs"] == removed, step
    assert funnel["per_source"]["warc"]["read"]["docs"] == PAGES
    assert funnel["skipped"]["warc"] == {"http_status": 1, "non_html": 1}
    german = sum(lang == "de" for lang in json.loads(web.labels.read_text())["languages"].values())
    assert funnel["removed"]["language"]["language_de"]["by_source"] == {"warc": german}
    assert 0.2 < funnel["retention"]["bytes"] < 0.9


def test_wiki_books_and_code_survive(web, cleaned):
    _, funnel = cleaned
    counts = json.loads(web.labels.read_text())["counts"]
    for source in ("wiki", "books", "code"):
        assert funnel["per_source"][source]["pii"]["docs"] == counts[source], source


def test_output_shards(cleaned):
    out, funnel = cleaned
    files = sorted(out.glob("documents-*.parquet"))
    assert [f.name for f in files] == funnel["files"]
    table = pq.read_table(files[0])
    assert table.column_names == ["id", "source", "url", "text", "language", "metadata"]
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert len(rows) == funnel["total"]["pii"]["docs"]
    assert len({r["id"] for r in rows}) == len(rows)
    prose = {r["language"] for r in rows if r["source"] != "code"}
    assert prose == {"en", "tr"}
    meta = json.loads(rows[0]["metadata"])
    assert "_order" not in meta and "language" not in meta
    assert not list(out.glob(".work")) and not list(out.glob("**/*.tmp"))


def test_contamination_report_names_planted_items(web, cleaned):
    _, funnel = cleaned
    planted = json.loads(web.labels.read_text())["planted"]
    full = {(f["url"], f["item"]) for f in funnel["contamination"] if f["coverage"] == 1.0}
    assert full == set(planted.items())
    assert all(b == "web_quiz" for b, _ in funnel["contaminated_items"])


def _run_subset(web, out: Path, workers: int) -> dict:
    subset = [f"warc:{web.root}/crawl-00000.warc.gz", f"books:{web.root}/books/*.txt"]
    return run_data(subset, out, DataConfig(workers=workers), seed=0, decontam_sets=web.eval_sets)


def _same_output(a: Path, fa: dict, b: Path, fb: dict) -> None:
    assert fa["total"] == fb["total"] and fa["removed"] == fb["removed"]
    assert fa["contamination"] == fb["contamination"] and fa["files"] == fb["files"]
    for name in fa["files"]:
        assert pq.read_table(a / name).equals(pq.read_table(b / name)), name


def test_same_seed_same_output(web, tmp_path):
    first = _run_subset(web, tmp_path / "a", workers=1)
    _same_output(tmp_path / "a", first, tmp_path / "b", _run_subset(web, tmp_path / "b", workers=1))
    assert first["total"]["read"]["docs"] > 100


def test_process_pool_gives_the_same_output(web, cleaned, tmp_path):
    """Two worker processes (own lingua models, shuffle through partition files) = one."""
    out, funnel = cleaned
    again = run_data(web.sources, tmp_path, DataConfig(workers=2), seed=0, decontam_sets=web.eval_sets)
    _same_output(out, funnel, tmp_path, again)


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no file"):
        run_data([f"warc:{tmp_path}/missing-*.warc.gz"], tmp_path / "o", DataConfig(workers=1))
    with pytest.raises(InputError, match="unknown source type"):
        run_data(["tape:/dev/null"], tmp_path / "o", DataConfig(workers=1))


def test_globs_become_one_task_per_file(web):
    tasks = expand_sources(web.sources)
    assert [t for t in tasks if t.startswith("warc:")] == [
        f"warc:{web.root}/crawl-{k:05d}.warc.gz" for k in range(4)
    ]
    assert f"code:{web.root}/code" in tasks


def test_cli_data_on_jsonl(tmp_path: Path):
    import random

    from chatforge.corpus.web import article

    world = World.build(0, CorpusConfig())
    rng = random.Random(0)
    docs = [{"body": "\n\n".join(article(world, e, "en", rng))} for e in world.entities[:3]]
    docs.append(dict(docs[0]))  # an exact duplicate of the first
    docs.append({"body": "buy now " * 80})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", "--source", f"jsonl:{src}:body", "--out", str(out),
                                      "--workers", "1", "pii_masking=false"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["total"]["read"]["docs"] == 5 and summary["total"]["decontam"]["docs"] == 3
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["removed"]["exact_dedup"]["exact_duplicate"]["docs"] == 1
    assert "pii" not in funnel["steps"]
    bad = CliRunner().invoke(app, ["data", "--source", f"jsonl:{tmp_path}/nope.jsonl", "--out", str(out)])
    assert bad.exit_code != 0


def test_data_stage_is_registered_after_corpus():
    names = stage_names()
    assert names.index("data") == names.index("corpus") + 1


def _real_run(shared: Path, out: Path, with_wiki: bool) -> dict:
    sources = [f"warc:{shared}/web-warc/*.warc.gz", f"books:{shared}/gutenberg/pg11.txt",
               f"jsonl:{shared}/ccnet-cc-en-head/*.jsonl.gz:text"]
    if with_wiki:
        sources.append(f"wiki:{shared}/wikipedia-dump-samples/enwiki-*.bz2")
    evals = [shared / "gsm8k" / "test.jsonl", shared / "humaneval" / "HumanEval.jsonl.gz",
             shared / "truthfulqa" / "TruthfulQA.csv", shared / "mmlu" / "test" / "astronomy_test.csv"]
    return run_data(sources, out, DataConfig(workers=1), seed=0, decontam_sets=[e for e in evals if e.exists()])


def test_real_samples_run(shared_data, tmp_path):
    funnel = _real_run(shared_data, tmp_path, with_wiki=False)
    assert funnel["decontam"]["items"] > 1000
    per = funnel["per_source"]
    assert per["warc"]["read"]["docs"] >= 30 and per["warc"]["pii"]["docs"] >= 5
    assert per["books"]["pii"]["docs"] == 12  # Alice survives as its 12 chapters, licence stripped
    assert per["jsonl"]["pii"]["docs"] >= 10  # CCNet's "head" bucket is mostly good text
    rows = [r for f in tmp_path.glob("documents-*.parquet") for r in pq.read_table(f).to_pylist()]
    assert {r["language"] for r in rows} <= {"en", "tr"}
    alice = "\n\n".join(r["text"] for r in rows if r["source"] == "books")
    assert "Alice" in alice and "PROJECT GUTENBERG" not in alice.upper()


@pytest.mark.slow
def test_real_samples_with_wikipedia(shared_data, tmp_path):
    funnel = _real_run(shared_data, tmp_path, with_wiki=True)
    assert funnel["per_source"]["wiki"]["pii"]["docs"] >= 80
    assert funnel["skipped"]["wiki"]["redirect"] > 50


def test_web_corpus_is_reproducible_and_labelled(tmp_path):
    world = World.build(0, CorpusConfig())
    a = build_web(tmp_path / "a", world, seed=3, n_pages=80)
    b = build_web(tmp_path / "b", world, seed=3, n_pages=80)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for rel in files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    labels = json.loads(a.labels.read_text())
    assert len(labels["pages"]) == 80 and set(labels["pages"].values()) == {
        "clean", "exact_dup", "near_dup", "other_lang", "spam", "boilerplate", "contaminated"}
    assert build_web(tmp_path / "c", world, seed=4, n_pages=80).labels.read_bytes() != a.labels.read_bytes()


def test_data_stage_writes_run_data(tmp_path):
    from chatforge.config import load_config
    from chatforge.data import stage
    from chatforge.runs import RunDir

    cfg = load_config("smoke", ["data.web_pages=200", "data.workers=1"])
    run = RunDir(tmp_path)
    result = stage.run(cfg, run)
    assert result.metrics["documents_in"] > 200 and 0 < result.metrics["retention_docs"] < 1
    assert result.metrics["exact_dup_recall"] == 1.0
    assert (run.data / "funnel.json").exists() and (run.data / "label_scores.json").exists()
    assert sorted(p.name for p in run.data.glob("documents-*.parquet")) == result.outputs["documents"]
    lines = run.metrics("data").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines][:2] == ["read", "normalize"]
