"""The corpus's contrast pairs: a right answer to an open request against the same answer with
one wrong fact, from training conversations only, so held-out questions keep their answers unseen."""

from __future__ import annotations

import json
import random

from chatforge.config import load_config
from chatforge.corpus import build, contrast
from chatforge.corpus.facts import Fact
from chatforge.eval.chat_eval import score_open


def test_contrast_pairs_hold_one_wrong_fact_and_no_held_out_question():
    cfg = load_config("smoke").corpus
    out = build.generate(cfg)
    pairs = out["contrast"]
    def dialogue(messages):
        return json.dumps(messages, ensure_ascii=False, sort_keys=True)

    convs = {dialogue(c["messages"][:-1]): c for c in out["train"] if c["kind"] == "open"}
    assert len(pairs) > 0.8 * len(convs)
    for pair in pairs:
        conv = convs[dialogue(pair.get("messages") or [{"role": "user", "content": pair["prompt"]}])]
        # every fact stated, one of them contradicted
        facts = [Fact(**f) for f in conv["meta"]["facts"]]
        assert score_open(pair["chosen"], facts, conv["lang"]) == (len(facts), 0)
        assert score_open(pair["rejected"], facts, conv["lang"]) == (len(facts) - 1, 1)
    # Facts held out of SFT altogether stay out of the pairs as well.
    unseen = {q["fact_id"] for q in out["facts_heldout"] if not q["seen_in_sft"]}
    assert unseen and not unseen & {f["id"] for c in convs.values() for f in c["meta"]["facts"]}


def test_a_wrong_value_keeps_the_relation_and_changes_the_answer():
    world = build.World.build(0, load_config("smoke").corpus)
    rng = random.Random(0)
    single = {f.relation for f in world.facts
              if len({g.object for g in world.facts if g.relation == f.relation}) == 1}
    for fact in world.facts:
        wrong = contrast.wrong_value(world, fact, rng)
        if fact.relation in single:
            assert wrong is None
            continue
        assert wrong.relation == fact.relation and wrong.subject == fact.subject
        assert wrong.object != fact.object
        assert wrong.object in {f.object for f in world.facts if f.relation == fact.relation}
