"""The report: after `chatforge run --preset smoke` it opens in headless Chromium with every
section and image, its figures equal the run's files, both languages read as written, and a
run with stages switched off still gives a complete report naming them."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatforge.report import i18n
from chatforge.report.facts import CL100K
from chatforge.report.sections import SECTION_IDS
from chatforge.runs import read_json, read_jsonl
from chatforge.tokenizer.bpe import load_tokenizer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ENV = {**os.environ, "COLUMNS": "200"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatforge", *args], capture_output=True, text=True,
                          timeout=900, env=ENV)


@pytest.fixture(scope="module")
def full_run(smoke_run) -> Path:
    """The session's smoke run (every stage), read only."""
    log = (smoke_run / "run.log").read_text()
    assert f"report: {smoke_run / 'report' / 'index.html'}" in log  # the run prints its path
    return smoke_run


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory) -> Path:
    """Data cleaning and preferences off, and nothing after pre-training but the report."""
    run_dir = tmp_path_factory.mktemp("report") / "partial"
    done = _cli("run", "--preset", "smoke", "--run-dir", str(run_dir),
                "--only", "corpus,tokenizer,tokens,pretrain,report", "prefs.enabled=false", "data.enabled=false")
    assert done.returncode == 0, done.stderr[-4000:]
    return run_dir


@pytest.fixture(scope="module")
def turkish(full_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_tr")
    done = _cli("report", str(full_run), "--lang", "tr", "--out", str(out))
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["html"] == str(out / "index.html")
    return out


def _text(page: Path) -> str:
    """The page's visible text, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


# -- formatting and words: fast, no run needed ---------------------------------------------

def test_numbers_are_written_the_way_each_language_reads_them():
    assert i18n.num(1234.5, "en", 1) == "1,234.5" and i18n.num(1234.5, "tr", 1) == "1.234,5"
    assert i18n.num(1234567, "tr") == "1.234.567"
    assert i18n.pct(0.123, "en") == "12.3%" and i18n.pct(0.123, "tr") == "%12,3"
    assert i18n.usd(63.2e6, "en") == "$63.2M" and i18n.usd(63.2e6, "tr") == "63,2 milyon $"
    assert i18n.small(0.000123, "en") == "0.00012" and i18n.small(0.000123, "tr") == "0,00012"
    assert i18n.sci(2.15e25, "tr") == "2,15 × 10^25"
    assert i18n.num(None, "en") == "–" and i18n.pct(float("nan"), "tr") == "–"


def test_every_text_exists_in_both_languages_and_they_differ():
    for key, texts in i18n.TEXT.items():
        assert set(texts) == set(i18n.LANGS), key
        assert all(texts[lang].strip() for lang in i18n.LANGS), key
    long = [k for k, v in i18n.TEXT.items() if len(v["en"]) > 60]
    assert long and all(i18n.TEXT[k]["en"] != i18n.TEXT[k]["tr"] for k in long)
    # The same placeholders on both sides, so a translation never drops a figure.
    for key, texts in i18n.TEXT.items():
        assert set(re.findall(r"{(\w+)}", texts["en"])) == set(re.findall(r"{(\w+)}", texts["tr"])), key


def test_report_of_a_folder_that_is_not_a_run_is_one_line_exit_2(tmp_path):
    done = _cli("report", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "not a run directory" in done.stderr


# -- the report of a real smoke run ---------------------------------------------------------

def test_report_files_are_self_contained(full_run):
    out = full_run / "report"
    page = (out / "index.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert re.findall(r'<img src="([^"]+)"', page) and all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'<img src="([^"]+)"', page))
    md = (out / "report.md").read_text()
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / name).stat().st_size > 1000, name
    for sid in SECTION_IDS:
        assert f'<section id="{sid}"' in page


def test_figures_in_the_report_equal_the_runs_files(full_run, turkish):
    facts = read_json(full_run / "report" / "report.json")
    en, tr = _text(full_run / "report" / "index.html"), _text(turkish / "index.html")
    manifests = {p.stem: read_json(p) for p in (full_run / "manifests").glob("*.json")}
    # stages: every manifest's metrics and wall time as they are
    for s in facts["stages"]:
        assert s["metrics"] == manifests[s["name"]]["metrics"] and s["wall_s"] == manifests[s["name"]]["wall_s"]
        assert i18n.seconds(s["wall_s"], "en") in en and i18n.seconds(s["wall_s"], "tr") in tr
    # pre-training: headline figures and the curves row for row
    pm = manifests["pretrain"]["metrics"]
    assert facts["pretrain"]["metrics"] == pm
    for lang, text in (("en", en), ("tr", tr)):
        assert i18n.num(pm["val_bpb"], lang, 3) in text
        assert i18n.num(pm["tokens"], lang) in text and i18n.pct(pm["mfu"], lang, 2) in text
    rows = read_jsonl(full_run / "metrics" / "pretrain.jsonl")
    assert facts["pretrain"]["curves"]["loss"] == [[r["step"], r["loss"]] for r in rows if "loss" in r]
    assert facts["pretrain"]["curves"]["val_bpb"] == [[r["step"], r["val_bpb"]] for r in rows if "val_bpb" in r]
    by_step = [[r["step"], r["samples"]] for r in rows if "samples" in r]
    assert by_step and facts["pretrain"]["samples_by_step"] == by_step  # smoke samples every 10 steps
    assert "Samples during pre-training" in en and "Ön eğitim sırasında üretilen örnekler" in tr
    assert facts["pretrain"]["completion"].startswith("Bugün hava çok")
    assert "Bugün hava çok" in en and "Bugün hava çok" in tr
    # data: the funnel and the run's retention beside the seed's 10-20%
    funnel = read_json(full_run / "data" / "funnel.json")
    assert facts["data"]["total"] == funnel["total"] and facts["data"]["per_source"] == funnel["per_source"]
    assert i18n.pct(funnel["retention"]["docs"], "en") in en and i18n.pct(funnel["retention"]["docs"], "tr") in tr
    assert "10-20%" in en and "%10-20" in tr
    for step, counts in funnel["total"].items():
        assert i18n.num(counts["bytes"], "en") in en and i18n.num(counts["bytes"], "tr") in tr, step
    # tokenizer: ids from this run's tokenizer (and GPT-4's when its file is here)
    tok = load_tokenizer(full_run / "tokenizer")
    for phrase in ("Merhaba dünya", "Hello world"):
        assert str(tok.encode(phrase)) in en
    if CL100K.exists():
        assert str([27814, 10796, 64, 52119, 23741]) in en and str([9906, 1917]) in en
    stats = read_json(full_run / "tokenizer" / "stats.json")["heldout"]
    for lang_key, v in stats["by_lang"].items():
        assert i18n.num(v["bytes_per_token"], "tr", 2) in tr, lang_key
    # evaluation: every scoreboard cell of the seed's table
    board = read_json(full_run / "eval" / "scoreboard.json")
    assert facts["eval"]["scoreboard"] == board
    for ckpt, entry in board.items():
        for key in ("mc_accuracy", "word_problem_accuracy", "code_pass@1", "truthful_mc1"):
            if entry.get(key) is not None:
                assert i18n.pct(entry[key], "en") in en and i18n.pct(entry[key], "tr") in tr, (ckpt, key)
    # red teaming: attack success per checkpoint and attack
    red = read_json(full_run / "redteam" / "report.json")
    for ckpt, entry in red["checkpoints"].items():
        assert facts["redteam"]["checkpoints"][ckpt]["asr_by_attack"] == entry["asr_by_attack"]
        for cell in entry["asr_by_attack"].values():
            assert f"{i18n.pct(cell['rate'], 'en')} (n={cell['n']})" in en
    # reward model and preferences
    rm = manifests["reward"]["metrics"]
    assert i18n.pct(rm["heldout_accuracy"], "en") in en and i18n.pct(rm["heldout_accuracy"], "tr") in tr
    assert facts["prefs"]["count"] > 0 and facts["prefs"]["examples"]
    # cost: this run's total from the calculator
    assert i18n.usd(facts["cost"]["measured"]["totals"]["usd"], "en") in en
    assert "GPT-4" in en and i18n.usd(facts["cost"]["scaled"]["total_usd"], "tr") in tr


def test_sections_and_answers_of_each_stage_are_there(full_run):
    facts = read_json(full_run / "report" / "report.json")
    assert set(facts["answers"]) >= {"base", "sft", "dpo"}
    assert all(len(a) == len(facts["prompts"]) for a in facts["answers"].values())
    md = (full_run / "report" / "report.md").read_text()
    for heading in ("## 1. Data", "## 2. Tokenization", "## 3. Pre-training", "## 4. Supervised",
                    "## 5. RLHF", "## 6. Evaluation", "## 7. Red teaming", "## 8. Cost"):
        assert heading in md
    assert "did not run" not in md.split("## 6. Evaluation")[1].split("## 8. Cost")[0]


def test_a_run_without_some_stages_gives_a_complete_report_naming_them(partial_run):
    page = (partial_run / "report" / "index.html").read_text()
    for sid in SECTION_IDS:
        assert f'<section id="{sid}"' in page
    for sid in ("data", "sft", "rlhf", "eval", "redteam"):
        assert f'<section id="{sid}" class="absent">' in page, sid
    for sid in ("env", "stages", "tokenizer", "pretrain", "cost"):
        assert f'<section id="{sid}" class="ran">' in page, sid
    text = _text(partial_run / "report" / "index.html")
    absent = text.split("Stages that did not run:")[1].split(".")[0]
    assert all(name in absent for name in ("data", "sft", "prefs", "reward", "dpo", "eval", "redteam"))
    assert "pretrain" not in absent and "tokenizer" not in absent
    assert text.count(i18n.t("not_run", "en")) >= 5


def test_compare_puts_two_runs_side_by_side(full_run, partial_run, tmp_path):
    done = _cli("report", str(full_run), "--compare", str(partial_run), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "index.html").read_text()
    assert page.count('<div class="cmp">') == len(SECTION_IDS)
    assert f">{full_run.name}<" in page and f">{partial_run.name}<" in page
    facts = read_json(tmp_path / "report.json")
    assert [r["name"] for r in facts["runs"]] == [full_run.name, partial_run.name]
    bpb = [read_json(d / "manifests" / "pretrain.json")["metrics"]["val_bpb"] for d in (full_run, partial_run)]
    text = _text(tmp_path / "index.html")
    assert all(i18n.num(v, "en", 3) in text for v in bpb)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_opens_in_chromium_with_every_section_and_image(full_run, turkish, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for lang, page_path in (("en", full_run / "report" / "index.html"), ("tr", turkish / "index.html")):
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                errors: list[str] = []
                page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(page_path.as_uri(), wait_until="load")
                ids = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
                assert ids == list(SECTION_IDS)
                widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
                assert widths and all(w > 0 for w in widths), widths
                assert page.evaluate("document.documentElement.lang") == lang
                # Readable without scrolling sideways: nothing wider than the window.
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
                heading = page.inner_text("#pretrain h2")
                assert heading == i18n.t("h_pretrain", lang)
                shot = tmp_path / f"report-{lang}.png"
                page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)
                assert not errors, errors
                page.close()
        finally:
            browser.close()
    assert all(s.stat().st_size > 50_000 for s in shots)


def test_the_stages_section_names_training_shortened_by_the_run_budget():
    from chatforge.report.sections import stages_section
    row = {"status": "complete", "device_name": "cpu", "n_devices": 1}
    f = {"stages": [{**row, "name": "pretrain", "wall_s": 177.0, "metrics": {"train_budget_s": 167.3}},
                    {**row, "name": "sft", "wall_s": 160.0, "metrics": {"train_budget_s": 125.0}},
                    {**row, "name": "eval", "wall_s": 78.0, "metrics": {}}]}
    for lang, needle in (("en", "pretrain 2.8 min, sft 2.1 min."), ("tr", "pretrain 2,8 dk, sft 2,1 dk.")):
        texts = [b.text for b in stages_section(f, lang, ("pretrain", "sft", "eval")).blocks if hasattr(b, "text")]
        assert any(text.startswith(i18n.t("stages_scaled", lang)) and text.endswith(needle) for text in texts)
    unscaled = {"stages": [{**row, "name": "eval", "wall_s": 78.0, "metrics": {}}]}
    texts = [b.text for b in stages_section(unscaled, "en", ("eval",)).blocks if hasattr(b, "text")]
    assert not any("time budget" in text for text in texts)
