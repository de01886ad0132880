"""Per-source mixture weights: whole epochs exactly, fractions seeded, ids distinct, in the funnel."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from chatforge.cli import app
from chatforge.config import DataConfig, load_config
from chatforge.data.clean import run_data
from chatforge.data.document import Document
from chatforge.data.mixture import copies, mixture_step, parse_mixture, unit
from chatforge.errors import ConfigError
from chatforge.tokenizer.shards import is_val

N = 40  # documents per source in the pipeline runs
SOURCES = ("books", "jsonl", "parquet", "text")
WEIGHTS = ["books=0", "jsonl=2.5", "parquet=0.5", "text=2"]  # and no weight (1) for nothing else


def _texts(rng: random.Random, n: int) -> list[str]:
    """Distinct word salads: no two share enough 5-grams to look like near duplicates."""
    # Letters only: dedup's shingles normalise digits away.
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(2000)]
    return [" ".join(rng.choices(vocab, k=60)) for _ in range(n)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("mix")
    rng = random.Random(0)
    (root / "a.jsonl").write_text("".join(json.dumps({"body": t}) + "\n" for t in _texts(rng, N)))
    (root / "b.txt").write_text("\n".join(_texts(rng, N)) + "\n")
    pq.write_table(pa.table({"text": _texts(rng, N)}), root / "c.parquet")
    (root / "books").mkdir()
    for i, t in enumerate(_texts(rng, N)):
        (root / "books" / f"{i:03d}.txt").write_text(t + "\n")
    return [f"jsonl:{root}/a.jsonl:body", f"text:{root}/b.txt:line", f"parquet:{root}/c.parquet:text",
            f"books:{root}/books"]


def _cfg(mixture: list[str]) -> DataConfig:
    # Synthetic text is no language: skip language ID and the prose filters (and lingua's load).
    return DataConfig(workers=1, pii_masking=False, prose_skip_sources=list(SOURCES), mixture=mixture)


def _rows(out: Path) -> list[dict]:
    return [r for f in sorted(out.glob("documents-*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def mixed(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    return out, run_data(inputs, out, _cfg(WEIGHTS), seed=5)


# --- the step on its own ---------------------------------------------------------------------


def _docs(source: str, n: int) -> list[Document]:
    return [Document(f"{source}-{i}", source, f"text {source} {i}") for i in range(n)]


@pytest.mark.parametrize("weight,expected", [(0, 0), (1, 1000), (2, 2000), (3, 3000)])
def test_whole_weights_are_exact_epochs(weight, expected):
    out = mixture_step(_docs("wiki", 1000) + _docs("code", 10), {"wiki": weight}, seed=0)
    by_source = Counter(d.source for d in out.kept)
    assert by_source == Counter({"wiki": expected} if expected else {}) + Counter({"code": 10})
    assert len({d.id for d in out.kept}) == len(out.kept)  # copies have their own ids
    if weight >= 2:
        second = next(d for d in out.kept if d.id == "wiki-7#epoch2")
        assert second.text == "text wiki 7" and second.metadata["epoch"] == 2
    assert Counter(reason for _, reason in out.removed) == Counter(
        {"mixture_weight_zero": 1000} if weight == 0 else {})


def test_fractions_are_seeded_and_nested():
    docs = _docs("warc", 2000)

    def kept(weight: float, seed: int) -> Counter[str]:
        return Counter(d.id.split("#")[0] for d in mixture_step(docs, {"warc": weight}, seed).kept)

    half = kept(0.5, seed=1)
    assert 900 <= len(half) <= 1100 and set(half.values()) == {1}
    assert half == kept(0.5, seed=1)  # same seed, same half
    assert half != kept(0.5, seed=2)
    assert set(half) == {d.id for d in docs if unit(1, d.id) < 0.5}
    # 2.5 = every document twice, and the seed's half (the same documents as 0.5) once more.
    twice_and_half = kept(2.5, seed=1)
    assert sum(twice_and_half.values()) == 4000 + len(half)
    assert {i for i, n in twice_and_half.items() if n == 3} == set(half)
    assert min(twice_and_half.values()) == 2
    removed = mixture_step(docs, {"warc": 0.5}, seed=1).removed
    assert {reason for _, reason in removed} == {"mixture_not_sampled"} and len(removed) == 2000 - len(half)


def test_copies_of_a_weight():
    assert [copies(w, 0.3) for w in (0, 0.25, 0.5, 1, 2, 2.25, 2.5)] == [0, 0, 1, 1, 2, 2, 3]


# --- configuration -----------------------------------------------------------------------------


def test_config_and_overrides():
    cfg = load_config("cpu", ["data.mixture=warc=1,wiki=2.5", "data.workers=1"])
    assert cfg.data.mixture == ["warc=1", "wiki=2.5"]
    assert parse_mixture(cfg.data.mixture) == {"warc": 1.0, "wiki": 2.5}
    assert load_config("cpu").data.mixture == []


@pytest.mark.parametrize("item,message", [
    ("warc", "expected SOURCE=WEIGHT"),
    ("warc=lots", "expected SOURCE=WEIGHT"),
    ("=2", "expected SOURCE=WEIGHT"),
    ("warc=-1", "finite number >= 0"),
    ("warc=inf", "finite number >= 0"),
])
def test_bad_items_are_one_line_config_errors(item, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config("cpu", [f"data.mixture=wiki=1,{item}"])
    assert item in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_source_is_named_by_the_data_stage_not_the_config():
    """config.py checks the syntax alone (it imports nothing from data/); the source kinds are
    the data readers' to know."""
    assert load_config("cpu", ["data.mixture=tape=1"]).data.mixture == ["tape=1"]
    with pytest.raises(ConfigError, match="unknown source 'tape'"):
        parse_mixture(["wiki=1", "tape=1"])


def test_a_source_given_twice_is_an_error():
    with pytest.raises(ConfigError, match="'wiki' is given twice"):
        parse_mixture(["wiki=1", "wiki=2"])


# --- the pipeline ------------------------------------------------------------------------------


def test_output_counts_per_source(mixed):
    out, funnel = mixed
    rows = _rows(out)
    count = Counter(r["source"] for r in rows)
    before = {s: funnel["per_source"][s]["decontam"]["docs"] for s in SOURCES}
    assert before == dict.fromkeys(SOURCES, N)  # the cleaning removed none of the synthetic documents
    base = {s: {r["id"] for r in rows if r["source"] == s and "#" not in r["id"]} for s in SOURCES}
    sampled = {s: {i for i in base[s] if unit(5, i) < 0.5} for s in ("jsonl", "parquet")}
    assert count["books"] == 0
    assert count["text"] == 2 * N
    assert count["jsonl"] == 2 * N + len(sampled["jsonl"]) and 0 < len(sampled["jsonl"]) < N
    assert count["parquet"] == len(base["parquet"]) and 0 < count["parquet"] < N
    assert len({r["id"] for r in rows}) == len(rows)
    epochs = Counter(r["id"].partition("#")[2] for r in rows if r["source"] == "jsonl")
    assert epochs == {"": N, "epoch2": N, "epoch3": len(sampled["jsonl"])}


def test_copies_share_the_text_and_so_the_split(mixed):
    out, _ = mixed
    by_base: dict[str, set[str]] = {}
    for r in _rows(out):
        by_base.setdefault(r["id"].split("#")[0], set()).add(r["text"])
    assert all(len(texts) == 1 for texts in by_base.values())
    splits = [is_val(t, 0.3, 0) for texts in by_base.values() for t in texts]
    assert True in splits and False in splits


def test_funnel_reports_the_mixture(mixed):
    out, funnel = mixed
    on_disk = json.loads((out / "funnel.json").read_text())
    assert on_disk["mixture"] == funnel["mixture"]
    assert funnel["steps"][-2:] == ["decontam", "mixture"]
    report = funnel["mixture"]["per_source"]
    assert report["text"]["weight"] == 2.0 and report["books"]["weight"] == 0.0
    assert report["text"]["docs_after"] == 2 * report["text"]["docs_before"] == 2 * N
    assert report["text"]["bytes_after"] == 2 * report["text"]["bytes_before"] > 0
    assert report["books"]["docs_after"] == report["books"]["bytes_after"] == 0
    rows = _rows(out)
    for source, entry in report.items():
        assert entry["docs_after"] == funnel["per_source"][source]["mixture"]["docs"]
        assert entry["docs_after"] == sum(r["source"] == source for r in rows)
    removed = funnel["removed"]["mixture"]
    assert removed["mixture_weight_zero"]["by_source"] == {"books": N}
    assert removed["mixture_not_sampled"]["by_source"] == {"parquet": N - report["parquet"]["docs_after"]}
    assert funnel["retention"]["docs"] == 1.0  # retention is the cleaning's, before the repeats
    logged = [json.loads(line) for f in (out / "removed").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sum(r["step"] == "mixture" for r in logged) == N + removed["mixture_not_sampled"]["docs"]


def test_same_seed_same_output_other_seed_other_sample(inputs, mixed, tmp_path):
    out, funnel = mixed
    again = run_data(inputs, tmp_path / "a", _cfg(WEIGHTS), seed=5)
    assert again["files"] == funnel["files"] and again["mixture"] == funnel["mixture"]
    for name in funnel["files"]:
        assert pq.read_table(out / name).equals(pq.read_table(tmp_path / "a" / name))
    other = run_data(inputs, tmp_path / "b", _cfg(WEIGHTS), seed=6)

    def parquet_ids(o: Path) -> set[str]:
        return {r["id"] for r in _rows(o) if r["source"] == "parquet"}

    assert parquet_ids(tmp_path / "b") != parquet_ids(out)
    assert other["mixture"]["seed"] == 6  # whole epochs do not depend on the seed
    assert other["mixture"]["per_source"]["text"] == funnel["mixture"]["per_source"]["text"]


def test_no_mixture_no_step(inputs, tmp_path):
    funnel = run_data(inputs[:1], tmp_path, _cfg([]), seed=5)
    assert "mixture" not in funnel and "mixture" not in funnel["steps"]


def test_cli_mix_option(inputs, tmp_path):
    out = tmp_path / "out"
    args = ["data", "--out", str(out), "--workers", "1", "pii_masking=false",
            "prose_skip_sources=jsonl,text", "--source", inputs[0], "--source", inputs[1]]
    result = CliRunner().invoke(app, [*args, "--mix", "jsonl=2", "--mix", "text=0"])
    assert result.exit_code == 0, result.output
    funnel = json.loads((out / "funnel.json").read_text())
    assert funnel["mixture"]["weights"] == {"jsonl": 2.0, "text": 0.0}
    assert Counter(r["source"] for r in _rows(out)) == {"jsonl": 2 * N}
    # The same through a plain override (lists are comma-separated).
    result = CliRunner().invoke(app, [*args, "mixture=jsonl=1,text=0.5"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "funnel.json").read_text())["mixture"]["weights"] == {"jsonl": 1.0, "text": 0.5}
    bad = CliRunner().invoke(app, [*args, "--mix", "jsonl=-2"])
    assert isinstance(bad.exception, ConfigError) and "jsonl=-2" in str(bad.exception)


def test_ray_executor_mixes_the_same(inputs, mixed, tmp_path):
    pytest.importorskip("ray")
    out, funnel = mixed
    cfg = _cfg(WEIGHTS)
    cfg.executor, cfg.workers = "ray", 2
    on_ray = run_data(inputs, tmp_path, cfg, seed=5)
    assert on_ray["files"] == funnel["files"] and on_ray["mixture"] == funnel["mixture"]
    for name in funnel["files"]:
        assert pq.read_table(out / name).equals(pq.read_table(tmp_path / name)), name
