"""Contrast pairs for preference training: a right answer to an open request against the same
answer with one fact made wrong (another value of the same relation), built from the training
conversations.

Sampled pairs seldom hold a wrong fact: the SFT model answers most training questions right at
both temperatures, so the rule judge ties them, and a reward model trained on what is left
learns to spot refusals and broken sentences but never to check a fact. These hard negatives
differ from the chosen answer in the fact alone (synthetic rejected answers, as Constitutional
AI's and many preference sets are built). Held-out facts never appear: the pairs come from the
training conversations, which leave them out.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from chatforge.corpus.facts import Fact
from chatforge.corpus.templates import fact_sentence, n_sentence_variants
from chatforge.corpus.world import World


def wrong_value(world: World, fact: Fact, rng: random.Random) -> Fact | None:
    """`fact` with the object of another fact of the same relation (a different answer), or
    None when the world gives that relation one value only."""
    others = sorted({(f.object, f.object_tr, f.object_id) for f in world.facts
                     if f.relation == fact.relation and f.object != fact.object})
    if not others:
        return None
    obj, obj_tr, obj_id = rng.choice(others)
    return replace(fact, object=obj, object_tr=obj_tr, object_id=obj_id)


def contrast_pairs(world: World, train: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """{"prompt", "chosen", "rejected"[, "messages"]} per open-request training conversation
    (PrefStore.import_jsonl's format); none where no fact can be wrong.

    Open requests only: contrast pairs for plain fact questions too (1,600 one-word answers
    beside some 300 sampled pairs) taught DPO to answer a harmful request about a person with
    a bare fact (refusals 60% -> 35%).
    """
    rng = random.Random(f"chatforge-contrast-{seed}")
    out = []
    for conv in train:
        if conv["kind"] != "open":
            continue
        lang, before = conv["lang"], conv["messages"][:-1]
        stated = [Fact(**f) for f in conv["meta"]["facts"]]
        variants = [rng.randrange(n_sentence_variants(f.relation, lang)) for f in stated]
        wrong = [wrong_value(world, f, rng) for f in stated]
        breakable = [i for i, w in enumerate(wrong) if w is not None]
        if not breakable:
            continue
        broken = rng.choice(breakable)
        chosen = " ".join(fact_sentence(f, lang, v) for f, v in zip(stated, variants, strict=True))
        rejected = " ".join(fact_sentence(wrong[i] if i == broken else f, lang, v)
                            for i, (f, v) in enumerate(zip(stated, variants, strict=True)))
        pair = {"prompt": before[-1]["content"], "chosen": chosen, "rejected": rejected}
        if len(before) > 1:
            pair["messages"] = before
        out.append(pair)
    return out
