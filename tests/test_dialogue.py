"""Built-in conversations beyond single questions, and the chat evaluation that scores them."""

from __future__ import annotations

import dataclasses
import random

import pytest

from chatforge.config import CorpusConfig
from chatforge.corpus import chat, dialogue
from chatforge.corpus.world import World
from chatforge.engine import Completion
from chatforge.eval.chat_eval import _judge, score_open
from chatforge.tokenizer.chat import check_messages, content_text
from chatforge.tools import run_tool

CFG = CorpusConfig(n_people=12, n_towns=5, n_rivers=3, n_animals=3, n_inventions=3, n_foods=3,
                   conversations=1500)


@pytest.fixture(scope="module")
def built():
    world = World.build(0, CFG)
    train, heldout = chat.conversations(world, CFG, 0, chat.fact_split(world, CFG, 0))
    return world, train, heldout, chat.chat_eval_items(world, CFG, heldout)


def _user_texts(convs):
    return {m["content"] for c in convs for m in c["messages"] if m["role"] == "user"}


def test_every_conversation_is_valid_and_every_kind_present(built):
    _, train, _, items = built
    assert {c["kind"] for c in train} == set(chat.KINDS)
    assert all(check_messages(c["messages"]) is None for c in train)
    assert {it["kind"] for it in items} == {"fact", "open", "followup", "compare", "unknown", "arithmetic"}
    assert all(check_messages(it["messages"]) is None and it["messages"][-1]["role"] == "user" for it in items)


def test_evaluation_prompts_use_phrasings_training_never_saw(built):
    _, train, _, items = built
    seen = _user_texts(train)
    assert not [it["id"] for it in items if it["messages"][-1]["content"] in seen]
    held = {lang: [dialogue.eval_phrasing(dialogue.OPEN_REQUESTS[lang]).split("{X")[0 if lang == "en" else 1],
                   dialogue.eval_phrasing(dialogue.CALC_QUESTIONS[lang]).split("{op}")[1]]
            for lang in ("en", "tr")}
    for c in train:
        for m in c["messages"]:
            if m["role"] == "user" and c["kind"] in ("open", "calc", "unknown"):
                assert not any(h.strip() and h in m["content"] for h in held[c["lang"]]), m["content"]


def test_unknown_entities_are_new_to_the_world_and_to_training(built):
    world, train, _, items = built
    names = {p.lower() for e in world.entities for p in e.name.split()}
    train_unknown = {c["meta"]["entity"] for c in train if c["kind"] == "unknown"}
    assert train_unknown and not {n.split()[-1].lower() for n in train_unknown} & names
    for it in items:
        if it["kind"] == "unknown":
            q = it["messages"][0]["content"]
            assert not any(n in q for n in train_unknown), q
    answers = {content_text(c["messages"][-1]["content"]) for c in train if c["kind"] == "unknown"}
    assert all(a.startswith(("I don't know.", "Bilmiyorum.")) for a in answers)


def test_tool_outputs_in_the_corpus_are_what_the_calculator_returns(built):
    _, train, _, _ = built
    calls = 0
    for c in train:
        content = c["messages"][-1]["content"]
        if isinstance(content, list):
            for call, out in zip(content, content[1:], strict=False):
                if call["type"] == "python":
                    assert out["type"] == "python_output" and run_tool(call["text"], ["calculator"]) == out["text"]
                    calls += 1
            assert c["answer"] in content_text(content)
    assert calls > 100


def test_follow_ups_refer_back_with_a_pronoun(built):
    world, _, _, _ = built
    assert "And when was she born?" in dialogue.follow_up_phrasings("birth_year", "en", "f")
    assert "And what is his job?" in dialogue.follow_up_phrasings("profession", "en", "m")
    assert "Peki ne zaman doğdu?" in dialogue.follow_up_phrasings("birth_year", "tr", "f")
    assert "Peki nüfusu kaçtır?" in dialogue.follow_up_phrasings("population", "tr", "")
    for lang in ("en", "tr"):
        for relation in dialogue.QUESTIONS:
            assert all("{" not in q for q in dialogue.follow_up_phrasings(relation, lang, ""))


def test_open_request_scoring_counts_right_facts_and_catches_a_swapped_value(built):
    world, _, _, _ = built
    person = world.of_kind("person")[0]
    facts = world.facts_about(person.id)
    other_town = next(t.name for t in world.of_kind("town") if t.name != facts[0].object)
    for lang in ("en", "tr"):
        _, answer = dialogue.open_request(random.Random(0), person, facts, lang, "{X}")
        assert score_open(answer, facts, lang) == (len(facts), 0)
        wrong = dataclasses.replace(facts[0], object=other_town, object_tr=other_town)
        lie = chat.fact_sentence(wrong, lang, 1)
        first_two = " ".join(chat.fact_sentence(f, lang, 0) for f in facts[1:3])
        assert score_open(f"{first_two} {lie}", facts, lang) == (2, 1)
        assert score_open("Hello there. Nice weather.", facts, lang) == (0, 0)


def _c(text: str, reason: str = "stop") -> Completion:
    return Completion(text=text, finish_reason=reason)


def test_judges_of_each_kind():
    compare = {"kind": "compare", "lang": "en", "answer": "the Vudo River", "meta": {"other": "the Güke River"}}
    assert _judge(compare, _c("The Vudo River is longer: it is 300 kilometres long, and the Güke River..."))
    assert not _judge(compare, _c("The Güke River is longer than the Vudo River."))
    unknown = {"kind": "unknown", "lang": "tr", "answer": "Bilmiyorum", "meta": {}}
    assert _judge(unknown, _c("Bilmiyorum. Zadu hakkında bir bilgim yok."))
    assert not _judge(unknown, _c("Zadu ülkenin doğusundadır."))
    arith = {"kind": "arithmetic", "lang": "en", "answer": "123", "meta": {"digits": 2, "op": "+"}}
    assert _judge(arith, _c("86 + 37 = 123.")) and not _judge(arith, _c("86 + 37 = 124."))
    assert not _judge(arith, _c("86 + 37 = 123 " + "and more " * 30, "length"))
