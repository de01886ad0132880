"""The built-in corpus: determinism, Turkish grammar, held-out hygiene, correct sums and code."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from chatforge.config import Config, load_config
from chatforge.corpus import build, chat, turkish
from chatforge.corpus.templates import QUESTIONS, SENTENCES
from chatforge.corpus.world import RELATIONS, World, fact_question, fact_sentence
from chatforge.errors import ConfigError
from chatforge.pipeline import run_pipeline
from chatforge.runs import RunDir
from chatforge.tokenizer.chat import content_text

FILES = ("pretrain.jsonl", "world.json", "sft_train.jsonl", "sft_heldout.jsonl", "rl_train.jsonl",
         "rl_heldout.jsonl",
         "facts_heldout.jsonl")
EQUATION = re.compile(r"(-?\d+) ([-+×÷]) (\d+) = (-?\d+)")


def smoke_config(**changes: object) -> Config:
    cfg = load_config("smoke")
    cfg.corpus = dataclasses.replace(cfg.corpus, **changes)
    return cfg


@pytest.fixture(scope="module")
def out() -> dict:
    return build.generate(smoke_config().corpus)


def test_stage_writes_identical_bytes_for_the_same_seed(tmp_path):
    first, second, other = RunDir(tmp_path / "a"), RunDir(tmp_path / "b"), RunDir(tmp_path / "c")
    result = build.run(smoke_config(), first)
    build.run(smoke_config(), second)
    build.run(smoke_config(seed=1), other)
    for name in FILES:
        assert (first.corpus / name).read_bytes() == (second.corpus / name).read_bytes(), name
        assert (first.corpus / name).read_bytes() != (other.corpus / name).read_bytes(), name
    assert result.metrics["documents"] > 0 and result.metrics["facts_heldout"] > 0
    assert sum(result.metrics["chars_per_source"].values()) == result.metrics["chars"]
    assert result.metrics["mentions_min"] >= smoke_config().corpus.min_mentions


def test_pipeline_runs_the_corpus_stage_and_then_skips_it(tmp_path):
    cfg, run = smoke_config(), RunDir(tmp_path / "run")
    manifest = run_pipeline(cfg, run, only=["corpus"], console=Console(quiet=True))["corpus"]
    assert manifest["status"] == "complete"
    assert sorted(p.name for p in run.corpus.iterdir()) == sorted((*FILES, "eval"))  # eval/: corpus/safety.py
    before = (run.corpus / "pretrain.jsonl").stat().st_mtime_ns
    run_pipeline(cfg, run, only=["corpus"], console=Console(quiet=True))
    assert (run.corpus / "pretrain.jsonl").stat().st_mtime_ns == before


def test_forcing_a_stage_reruns_the_stages_that_need_it_and_nothing_else(tmp_path):
    cfg, run = smoke_config(), RunDir(tmp_path / "run")
    quiet = Console(quiet=True)
    first = run_pipeline(cfg, run, only=["corpus", "data", "tokenizer"], console=quiet)
    # The tokenizer needs data, which needs the corpus: forcing data re-runs the tokenizer too,
    # even though both keys are unchanged, and leaves the corpus alone.
    second = run_pipeline(cfg, run, only=["corpus", "data", "tokenizer"], force=["data"], console=quiet)
    assert second["corpus"]["started"] == first["corpus"]["started"]
    assert second["data"]["started"] > first["data"]["started"]
    assert second["tokenizer"]["started"] > first["tokenizer"]["started"]
    third = run_pipeline(cfg, run, only=["corpus", "data", "tokenizer"], console=quiet)
    assert all(third[n]["started"] == second[n]["started"] for n in ("corpus", "data", "tokenizer"))


def test_output_does_not_depend_on_the_hash_seed():
    """Set iteration order changes with PYTHONHASHSEED; the corpus must not."""
    script = (
        "import hashlib, json; from chatforge.config import load_config; "
        "from chatforge.corpus.build import generate; o = generate(load_config('smoke').corpus); "
        "print(hashlib.sha256(json.dumps([o['docs'], o['train'], o['heldout']]).encode()).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_world_round_trips_through_json(out):
    world = out["world"]
    assert World.from_json(world.to_json()) == world
    names = [e.name for e in world.entities]
    assert len(names) == len(set(names))
    # No name hides inside another, so an answer can be found by substring without ambiguity.
    lowered = [n.lower() for n in names]
    assert not [(a, b) for a in lowered for b in lowered if a != b and a in b]
    for entity in world.entities:
        relations = [f.relation for f in world.facts_about(entity.id)]
        assert relations == list(RELATIONS[entity.kind])


def test_both_languages_with_turkish_letters(out):
    langs = {d["lang"] for d in out["docs"]}
    assert langs == {"en", "tr"}
    turkish_text = " ".join(d["text"] for d in out["docs"] if d["lang"] == "tr")
    turkish_text += " ".join(content_text(m["content"]) for c in out["train"] if c["lang"] == "tr"
                             for m in c["messages"])
    for letter in "çğıİöşü":
        assert letter in turkish_text, letter
    assert {c["lang"] for c in out["train"]} == {"en", "tr"}


@pytest.mark.parametrize(("word", "case", "proper", "possessive", "expected"), [
    ("Karova", "loc", True, False, "Karova'da"),
    ("Belkent", "loc", True, False, "Belkent'te"),
    ("Ayşe Kaya", "gen", True, False, "Ayşe Kaya'nın"),
    ("Elif Öztürk", "gen", True, False, "Elif Öztürk'ün"),
    ("Morvela", "acc", True, False, "Morvela'yı"),
    ("Durna Nehri", "dat", True, True, "Durna Nehri'ne"),
    ("Durna Nehri", "abl", True, True, "Durna Nehri'nden"),
    ("fırıncı", "cop", False, False, "fırıncıdır"),
    ("mühendis", "cop", False, False, "mühendistir"),
    ("doktor", "cop", False, False, "doktordur"),
    ("saat", "cop", False, False, "saattir"),
    ("tohum", "ins", False, False, "tohumla"),
    ("meyve", "ins", False, False, "meyveyle"),
    ("pirinç", "abl", False, False, "pirinçten"),
])
def test_turkish_suffixes_follow_vowel_harmony(word, case, proper, possessive, expected):
    assert turkish.inflect(word, case, proper, possessive) == expected


def test_turkish_capitalisation_keeps_dotted_and_dotless_i():
    assert turkish.capitalize("ılgaz", "tr") == "Ilgaz"
    assert turkish.capitalize("inek", "tr") == "İnek"
    assert turkish.capitalize("inek", "en") == "Inek"


def test_every_template_renders_subject_and_answer(out):
    world = out["world"]
    for fact in world.facts:
        for lang in ("en", "tr"):
            for variant in range(len(SENTENCES[fact.relation][lang])):
                sentence = fact_sentence(fact, lang, variant)
                assert fact.answer(lang) in sentence and "{" not in sentence, sentence
                subject = (fact.subject, turkish.capitalize(fact.subject, lang))
                assert any(name in sentence for name in subject), sentence
            for variant in range(len(QUESTIONS[fact.relation][lang])):
                question = fact_question(fact, lang, variant)
                assert question.endswith("?") and "{" not in question, question


def test_heldout_facts_are_stated_in_pretraining(out):
    cfg = smoke_config().corpus
    world = out["world"]
    by_lang = {lang: [d["text"] for d in out["docs"] if d["lang"] == lang] for lang in ("en", "tr")}
    assert out["facts_heldout"]
    for q in out["facts_heldout"]:
        fact = world.fact(q["fact_id"])
        assert q["answer"] == fact.answer(q["lang"])
        assert out["mentions"][fact.id, q["lang"]] >= cfg.min_mentions
        together = [t for t in by_lang[q["lang"]] if fact.subject in t and q["answer"] in t]
        assert len(together) >= 3, (q, len(together))


def test_heldout_questions_never_appear_in_sft_train(out):
    train_users = {m["content"] for c in out["train"] for m in c["messages"] if m["role"] == "user"}
    held = out["facts_heldout"]
    assert not [q for q in held if q["question"] in train_users]
    world = out["world"]
    unseen = {q["fact_id"] for q in held if not q["seen_in_sft"]}
    seen = {q["fact_id"] for q in held if q["seen_in_sft"]}
    assert unseen and seen
    train_text = " ".join(content_text(m["content"]) for c in out["train"] for m in c["messages"])
    for fact_id in unseen:  # no phrasing of an unseen fact is asked or stated in SFT
        fact = world.fact(fact_id)
        for lang in ("en", "tr"):
            for v in range(len(QUESTIONS[fact.relation][lang])):
                assert fact_question(fact, lang, v) not in train_users
            for v in range(len(SENTENCES[fact.relation][lang])):
                assert fact_sentence(fact, lang, v) not in train_text
    asked = {i for c in out["train"] if c["kind"] == "fact" for i in c["meta"]["fact_ids"]}
    assert seen <= asked  # each seen held-out fact is asked in SFT with another phrasing


def test_pretraining_asks_facts_but_never_a_heldout_question_or_an_unseen_fact(out):
    world = out["world"]
    pages = [d for d in out["docs"] if d["source"] == "faq"]
    assert len(pages) == smoke_config().corpus.faqs
    for d in pages:  # user asks, assistant answers with the fact's value, turn after turn
        roles = [m["role"] for m in d["messages"]]
        assert roles and roles == ["user", "assistant"] * (len(roles) // 2)
    asked = [m["content"] for d in pages for m in d["messages"] if m["role"] == "user"]
    questions = set(asked)
    unseen = [world.fact(q["fact_id"]) for q in out["facts_heldout"] if not q["seen_in_sft"]]
    assert unseen
    for q in out["facts_heldout"]:
        assert q["question"] not in questions, q  # the held-out phrasing stays new
    for fact in unseen:  # an unseen fact is only ever stated, never asked
        for lang in ("en", "tr"):
            for v in range(len(QUESTIONS[fact.relation][lang])):
                assert fact_question(fact, lang, v) not in questions
    seen_subjects = {f.subject for f in world.facts if f.id not in {u.id for u in unseen}}
    assert all(any(s in d["text"] for d in pages) for s in seen_subjects)


def _check_equations(text: str) -> int:
    found = EQUATION.findall(text)
    for a, op, b, c in found:
        a, b, c = int(a), int(b), int(c)
        expected = {"+": a + b, "-": a - b, "×": a * b, "÷": a // b if b else None}[op]
        assert expected == c and (op != "÷" or a % b == 0), f"{a} {op} {b} = {c}"
    return len(found)


def test_arithmetic_is_correct(out):
    n = sum(_check_equations(d["text"]) for d in out["docs"] if d["source"] == "arithmetic")
    problems = [c for c in out["train"] + out["heldout"] + out["rl"] if c["kind"] == "arithmetic"]
    for conv in problems:
        solution = content_text(conv["messages"][-1]["content"])  # the text still writes each equation
        n += _check_equations(solution)
        assert re.findall(r"-?\d+", solution)[-1] == conv["answer"]
        assert solution.endswith((f"So the answer is {conv['answer']}.", f"Yani cevap {conv['answer']}."))
    assert n > 100


def test_rl_problems_are_fresh_and_hide_unseen_facts(out):
    """GRPO's word problems: none asked in SFT (train or held-out), none repeated, and none
    states a fact that SFT is not meant to see."""
    asked = {c["messages"][-2]["content"] for c in out["train"] + out["heldout"] if c["kind"] == "arithmetic"}
    questions = [c["messages"][-2]["content"] for c in out["rl"] + out["rl_heldout"]]
    assert len(questions) == build.RL_PROBLEMS + build.RL_HELDOUT == len(set(questions))
    assert not asked & set(questions)
    assert {c["lang"] for c in out["rl"]} == {"en", "tr"}
    world = out["world"]
    unseen = [world.fact(q["fact_id"]) for q in out["facts_heldout"] if not q["seen_in_sft"]]
    text = " ".join(content_text(m["content"]) for c in out["rl"] + out["rl_heldout"] for m in c["messages"])
    for fact in unseen:
        for lang in ("en", "tr"):
            for v in range(len(SENTENCES[fact.relation][lang])):
                assert fact_sentence(fact, lang, v) not in text


def test_code_compiles_and_its_asserts_pass(out):
    code_docs = [d for d in out["docs"] if d["source"] == "code"]
    assert code_docs
    for doc in code_docs:
        exec(compile(doc["text"], doc["id"], "exec"), {})
    for conv in [c for c in out["train"] + out["heldout"] if c["kind"] == "code"]:
        block = re.search(r"```python\n(.*?)```", conv["messages"][-1]["content"], re.S)
        assert block, conv["id"]
        exec(compile(block.group(1) + "\n".join(conv["meta"]["tests"]), conv["id"], "exec"), {})


def test_conversations_are_well_formed(out):
    train, heldout = out["train"], out["heldout"]
    ids = [c["id"] for c in train + heldout]
    assert len(ids) == len(set(ids))
    for conv in train + heldout:
        assert conv["kind"] in chat.KINDS and conv["lang"] in ("en", "tr")
        roles = [m["role"] for m in conv["messages"]]
        if roles[0] == "system":
            roles = roles[1:]
        assert roles and roles == ["user", "assistant"] * (len(roles) // 2), conv["id"]
        assert all(content_text(m["content"]).strip() for m in conv["messages"])
        answered = ("fact", "arithmetic", "calc", "followup", "compare", "unknown")
        if conv["kind"] in answered:
            assert conv["answer"]
        if conv["kind"] in ("fact", "followup"):
            assert conv["messages"][-1]["content"] == conv["answer"]
        elif conv["kind"] == "unknown":  # the answer is the marker the reply starts with
            assert content_text(conv["messages"][-1]["content"]).startswith(conv["answer"])
        else:
            assert conv["kind"] in answered or conv["answer"] == ""
    kinds = {(c["kind"], c["lang"]) for c in train}
    assert kinds == {(k, lang) for k in chat.KINDS for lang in ("en", "tr")}
    # Held-out fact questions are bare single turns: the scorer asks them the same way.
    assert all(len(c["messages"]) == 2 for c in heldout if c["kind"] == "fact")


def test_refusals_decline_without_instructions(out):
    refusals = [c for c in out["train"] if c["kind"] == "refusal"]
    assert len({c["meta"]["category"] for c in refusals}) >= 4
    for conv in refusals:
        reply = conv["messages"][-1]["content"]
        assert reply.startswith(("I'm sorry, but I can't help with that.",
                                 "Üzgünüm, bu konuda yardımcı olamam."))


@pytest.mark.parametrize(("key", "value"), [
    ("languages", "fr"), ("n_towns", 0), ("heldout_fraction", 1.5), ("stories", -1),
])
def test_bad_corpus_settings_are_config_errors_at_load_time(key, value):
    with pytest.raises(ConfigError, match=f"corpus.{key}"):
        load_config("smoke", [f"corpus.{key}={value}"])


def test_single_language_corpus(out):
    english = build.generate(smoke_config(languages=["en"]).corpus)
    assert {d["lang"] for d in english["docs"]} == {"en"}
    assert {c["lang"] for c in english["train"] + english["heldout"]} == {"en"}


def test_cpu_preset_size_and_coverage():
    cfg = load_config("cpu").corpus
    result = build.generate(cfg)
    chars = sum(len(d["text"]) for d in result["docs"])
    assert 3_000_000 <= chars <= 8_000_000
    per_fact = [result["mentions"][f.id, lang] for f in result["world"].facts for lang in cfg.languages]
    assert min(per_fact) >= cfg.min_mentions
    assert len(result["facts_heldout"]) >= 100
