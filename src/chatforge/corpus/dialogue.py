"""Conversations beyond single questions: open requests, follow-ups, comparisons, questions about
things the world lacks, and arithmetic done with the calculator tool.

Each prompt family has several phrasings per language; the LAST one of every list is held out
of training and used only by the chat evaluation (`eval_items`), so its scores measure how
the model generalises to new wording, not recall of a template. Answers are built from the
same sentence templates as pre-training (`templates.fact_sentence`), so an open request is
answered in sentences the model has read many times, and a follow-up refers back with a
pronoun ("And when was she born?", "Peki ne zaman doğdu?").

Tool use follows the chat template's part format: an assistant content is a list of
{"type": "text" | "python" | "python_output", "text"} parts; the output parts hold what the
calculator (`chatforge.tools`) returns, integers written plainly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection
from dataclasses import asdict, replace

from chatforge.corpus import lexicon, tasks, turkish
from chatforge.corpus.facts import Entity, Fact
from chatforge.corpus.templates import QUESTIONS, display, fact_question, fact_sentence, name_forms
from chatforge.corpus.world import RELATIONS, World

# Many training phrasings, so that the held-out one is met as new wording of a familiar
# request; the Turkish ones include the "-ebilir misin" modal that harmful requests also use,
# so that a polite form is not learned as a sign of harm.
OPEN_REQUESTS = {
    "en": ["Tell me about {X}.", "What do you know about {X}?", "Describe {X}.",
           "Can you tell me something about {X}?", "What can you tell me about {X}?",
           "Give me some information about {X}.", "Could you describe {X} for me?",
           "Share what you know about {X}.", "I'd like to hear about {X}."],
    "tr": ["Bana {X_abl} bahset.", "{X} hakkında ne biliyorsun?", "{X_acc} anlat.",
           "{X} hakkında bilgi verir misin?", "Bana {X_abl} bahsedebilir misin?",
           "{X} hakkında bir şeyler anlatabilir misin?", "{X} hakkında bilgi verebilir misin?",
           "{X} hakkında neler biliyorsun?", "{X} hakkında neler anlatabilirsin?",
           "{X} hakkında neler söyleyebilirsin?"],
}

# Comparisons: relation -> (question phrasings, answer), per language. {A}/{B} the two
# subjects, {W} the one that wins, {L} the other; {VW}/{VL} their values.
COMPARISONS = {
    "length": {
        "en": (["Which river is longer, {A} or {B}?", "Is {A} longer than {B}?",
                "Which of {A} and {B} is the longer river?"],
               "{W} is longer: it is {VW} kilometres long, and {L} is {VL} kilometres long."),
        "tr": (["Hangi nehir daha uzun, {A} mi {B} mi?", "{A}, {B_abl} daha uzun mu?",
                "{A} ile {B} arasında hangisi daha uzundur?"],
               "{W} daha uzundur: {VW} kilometredir, {L} ise {VL} kilometredir."),
    },
    "population": {
        "en": (["Which town has more people, {A} or {B}?", "Do more people live in {A} or in {B}?",
                "Which of {A} and {B} has the larger population?"],
               "{W} has more people: {VW} people live there, and {VL} live in {L}."),
        "tr": (["Hangi kasabanın nüfusu daha fazla, {A_gen} mı {B_gen} mı?",
                "{A_loc} mı yoksa {B_loc} mı daha çok insan yaşar?",
                "{A} ile {B} arasında hangisinin nüfusu daha büyüktür?"],
               "{W_gen} nüfusu daha fazladır: {VW} kişi, {L_gen} nüfusu ise {VL} kişidir."),
    },
    "birth_year": {
        "en": (["Who was born first, {A} or {B}?", "Was {A} born before {B}?",
                "Which of {A} and {B} was born earlier?"],
               "{W} was born first, in {VW}; {L} was born in {VL}."),
        "tr": (["Kim daha önce doğdu, {A} mı {B} mi?", "{A}, {B_abl} önce mi doğdu?",
                "{A} ile {B} arasında hangisi daha önce doğdu?"],
               "{W} daha önce doğdu, {VW} yılında; {L} ise {VL} yılında doğdu."),
    },
}
_WINS_BY_SMALLER = {"birth_year"}

UNKNOWN_ANSWER = {"en": "I don't know. I have no information about {X}.",
                  "tr": "Bilmiyorum. {X} hakkında bir bilgim yok."}
UNKNOWN_MARKER = {"en": "I don't know", "tr": "Bilmiyorum"}

# Bare arithmetic: phrasings per language ({a} {op} {b}); the last is held out for evaluation.
# Five Turkish training ones left the held-out "kaç yapar?" to chance: on two SFT models 55% and
# 78% of its additions went right, the model writing the sum as text instead of calling the
# calculator (English, with as few: 100%).
CALC_QUESTIONS = {
    "en": ["What is {a} {op} {b}?", "Calculate {a} {op} {b}.", "How much is {a} {word} {b}?",
           "{a} {op} {b} = ?", "Can you compute {a} {op} {b}?", "What's {a} {word} {b}?",
           "Tell me {a} {op} {b}, please.", "What does {a} {op} {b} make?", "Work out {a} {op} {b}."],
    "tr": ["{a} {op} {b} kaçtır?", "{a} {op} {b} işlemini hesapla.", "{a} {word} {b} kaç eder?",
           "{a} {op} {b} = ?", "{a} {op} {b} işleminin sonucu ne?", "{a} {op} {b} ne eder?",
           "{a} {word} {b} kaç olur?", "Hesaplar mısın: {a} {op} {b}", "{a} {op} {b} sonucu kaç?",
           "{a} {op} {b} kaç yapar?"],
}
OP_WORDS = {"en": {"+": "plus", "-": "minus", "×": "times"}, "tr": {"+": "artı", "-": "eksi", "×": "çarpı"}}
CALC_ANSWER = {"en": "{a} {op} {b} = {c}.", "tr": "{a} {op} {b} = {c}."}

Parts = list[dict[str, str]]


def train_phrasings(options: list[str]) -> list[str]:
    return options[:-1]


def eval_phrasing(options: list[str]) -> str:
    return options[-1]


def subject_forms(prefix: str, entity: Entity | Fact, lang: str) -> dict[str, str]:
    """Every form of an entity's name a prompt may ask for (see templates.name_forms)."""
    name, kind = (entity.name, entity.kind) if isinstance(entity, Entity) else (entity.subject, entity.subject_kind)
    return name_forms(prefix, display(name, kind, lang), kind, lang)


def _fill(template: str, lang: str, **forms: str) -> str:
    return turkish.capitalize(template.format(**forms), lang)


# ---- open requests ----


def open_request(rng: random.Random, subject: Entity, facts: list[Fact], lang: str, phrasing: str) -> tuple[str, str]:
    """(request, answer): the answer states every fact given, one sentence each."""
    request = _fill(phrasing, lang, **subject_forms("X", subject, lang))
    answer = " ".join(fact_sentence(f, lang, rng.randrange(4)) for f in facts)
    return request, answer


# ---- follow-ups ----

_EN_PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "his", "him"), "": ("it", "its", "it")}
_TR_PRONOUNS = {"{S_loc}": "orada", "{S_acc}": "onu", "{S_abl}": "ondan", "{S_gen} ": "", "{S} kasabası": "kasaba",
                "{S}, ": "", "{S} ": ""}


def follow_up_phrasings(relation: str, lang: str, gender: str) -> list[str]:
    """The relation's questions with the subject replaced by a pronoun (EN) or dropped (TR)."""
    out = []
    for q in QUESTIONS[relation][lang]:
        if lang == "en":
            subj, poss, obj = _EN_PRONOUNS[gender]
            q = (q.replace("the town of {S}", "the town").replace("the dish {S}", "the dish")
                 .replace("live in {S}", "live there").replace("of {S}", f"of {obj}")
                 .replace("{S_poss}", poss).replace("invented {S}", "invented it").replace("{S}", subj))
            q = "And " + q[0].lower() + q[1:]
        else:
            for slot, pronoun in _TR_PRONOUNS.items():
                q = q.replace(slot, pronoun)
            q = "Peki " + re.sub(r"\s+", " ", q).strip()
        out.append(q)
    return out


def follow_up(first: Fact, second: Fact, gender: str, lang: str, first_variant: int, phrasing: int) -> list[dict]:
    """Messages: a question about `first`, its answer, then a follow-up about `second`."""
    question = follow_up_phrasings(second.relation, lang, gender)[phrasing]
    return [{"role": "user", "content": fact_question(first, lang, first_variant)},
            {"role": "assistant", "content": first.answer(lang)},
            {"role": "user", "content": question}]


# ---- comparisons ----


def comparison(fa: Fact, fb: Fact, lang: str, phrasing: int) -> tuple[str, str, str, str]:
    """(question, answer, winner's name, other's name) comparing one numeric relation."""
    questions, answer = COMPARISONS[fa.relation][lang]
    va, vb = int(fa.object), int(fb.object)
    a_wins = (va < vb) if fa.relation in _WINS_BY_SMALLER else (va > vb)
    win, lose = (fa, fb) if a_wins else (fb, fa)
    forms = subject_forms("A", fa, lang) | subject_forms("B", fb, lang)
    forms |= subject_forms("W", win, lang) | subject_forms("L", lose, lang)
    forms |= {"VW": win.object, "VL": lose.object}
    return (_fill(questions[phrasing], lang, **forms), _fill(answer, lang, **forms),
            display(win.subject, win.subject_kind, lang), display(lose.subject, lose.subject_kind, lang))


def comparison_pairs(world: World, relation: str) -> list[tuple[Fact, Fact]]:
    facts = [f for f in world.facts if f.relation == relation]
    return [(a, b) for a in facts for b in facts if a.id != b.id and a.object != b.object]


# ---- unknown entities ----


def unknown_entities(world: World, n: int, seed: str, taken: set[str]) -> list[Entity]:
    """`n` entities the world does not contain, names invented like the world's own; `taken`
    (every name part already used) grows, so training and evaluation never share a name."""
    rng = random.Random(f"chatforge-unknown-{seed}-{world.seed}")
    kinds = ("person", "town", "river", "animal", "invention", "food")
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "person":
            gender = rng.choice("fm")
            first = rng.choice(lexicon.FIRST_NAMES_F if gender == "f" else lexicon.FIRST_NAMES_M)
            name = f"{first} {lexicon.invent_name(rng, 3, taken).capitalize()}"
        else:
            gender, name = "", lexicon.invent_name(rng, rng.choice((2, 3)), taken)
            if kind in ("town", "river", "invention"):
                name = name.capitalize()
        out.append(Entity(f"unknown-{kind}-{seed}-{i:03d}", kind, name, gender))
    return out


def taken_names(world: World) -> set[str]:
    """Every lower-case name part the world uses (what a new invented name must avoid)."""
    return {part.lower() for e in world.entities for part in e.name.split()} | {
        world.country.lower(), *(s.lower() for s in world.seas)}


def unknown_question(rng: random.Random, world: World, entity: Entity, lang: str, held_out: bool) -> tuple[str, str]:
    """(question, "I don't know" answer) about an entity the world lacks: an open request or a
    fact question, in a training phrasing or (`held_out`) the evaluation one."""
    forms = subject_forms("X", entity, lang)
    if rng.random() < 0.3:
        options = OPEN_REQUESTS[lang]
        question = _fill(eval_phrasing(options) if held_out else rng.choice(train_phrasings(options)), lang, **forms)
    else:
        relation = rng.choice(RELATIONS[entity.kind])
        proto = next(f for f in world.facts if f.relation == relation)  # any value: questions omit it
        fake = replace(proto, id=f"{entity.id}.{relation}", subject_id=entity.id, subject=entity.name)
        n = len(QUESTIONS[relation][lang])
        question = fact_question(fake, lang, n - 1 if held_out else rng.randrange(n - 1))
    return question, _fill(UNKNOWN_ANSWER[lang], lang, **forms)


# ---- arithmetic with the calculator ----


def tool_solution(problem: tasks.Problem) -> Parts:
    """A word problem's worked solution with a calculator call before each equation."""
    parts: Parts = []
    rest = problem.solution
    for a, op, b, c in problem.equations:
        eq = f"{a} {op} {b} = {c}"
        before, found, rest = rest.partition(eq)
        if not found:
            raise ValueError(f"{problem.kind}: equation {eq!r} not in its solution")
        if before:
            parts.append({"type": "text", "text": before})
        parts += [{"type": "python", "text": f"{a} {op} {b}"}, {"type": "python_output", "text": str(c)}]
        rest = eq + rest  # the text still writes the equation out, now copying the tool's result
    parts.append({"type": "text", "text": rest})
    return parts


def calc_problem(rng: random.Random, lang: str, digits: int, op: str, phrasing: str) -> tuple[str, Parts, str]:
    """(question, tool-using answer parts, answer) for one bare arithmetic question."""
    lo, hi = 10 ** (digits - 1), 10**digits
    a, b = rng.randrange(lo, hi), rng.randrange(lo, hi)
    if op == "-" and b > a:
        a, b = b, a
    if op == "×":
        b = rng.randrange(2, 10)
    c = tasks.OPS[op](a, b)
    question = phrasing.format(a=a, b=b, op=op, word=OP_WORDS[lang][op])
    parts = [{"type": "python", "text": f"{a} {op} {b}"}, {"type": "python_output", "text": str(c)},
             {"type": "text", "text": CALC_ANSWER[lang].format(a=a, b=b, op=op, c=c)}]
    return question, parts, str(c)


# ---- evaluation items ----


def fact_records(facts: list[Fact]) -> list[dict]:
    return [asdict(f) for f in facts]


def eval_items(world: World, langs: list[str], seed: int, unseen: Collection[str], taken: set[str],
               fact_items: list[dict], n_per_kind: int) -> list[dict]:
    """The chat evaluation's items (held-out phrasings only): fact, open, followup, compare,
    unknown and arithmetic, each {"id", "kind", "lang", "messages", "answer", "meta"}."""
    rng = random.Random(f"chatforge-chat-eval-{seed}")
    items = [dict(it, kind="fact") for it in fact_items]
    subjects = [e for e in world.entities if len(_known(world, e, unseen)) >= 2]

    def pick(pool: list) -> list:
        return [rng.choice(pool) for _ in range(n_per_kind)]

    for lang in langs:
        phrasing = eval_phrasing(OPEN_REQUESTS[lang])
        for e in pick(subjects):
            request = _fill(phrasing, lang, **subject_forms("X", e, lang))
            items.append(_item("open", lang, [request], "", facts=fact_records(_known(world, e, unseen))))
        for e in pick(subjects):
            first, second = rng.sample(_known(world, e, unseen), 2)
            first_variant = rng.randrange(len(QUESTIONS[first.relation][lang]))
            msgs = follow_up(first, second, e.gender, lang, first_variant, len(QUESTIONS[second.relation][lang]) - 1)
            items.append({"kind": "followup", "lang": lang, "messages": msgs, "answer": second.answer(lang),
                          "meta": {"fact_id": second.id}})
        for relation in COMPARISONS:
            pairs = comparison_pairs(world, relation)
            for fa, fb in [rng.choice(pairs) for _ in range(max(1, n_per_kind // len(COMPARISONS)))]:
                q, _, winner, other = comparison(fa, fb, lang, len(COMPARISONS[relation][lang][0]) - 1)
                items.append(_item("compare", lang, [q], winner, other=other, relation=relation))
        for e in unknown_entities(world, n_per_kind, f"eval-{lang}", taken):
            q, _ = unknown_question(rng, world, e, lang, held_out=True)
            items.append(_item("unknown", lang, [q], UNKNOWN_MARKER[lang], entity_kind=e.kind))
        for digits in (2, 3):
            for op in ("+", "-", "×"):
                for _ in range(n_per_kind if op == "+" else max(1, n_per_kind // 4)):
                    q, _, answer = calc_problem(rng, lang, digits, op, eval_phrasing(CALC_QUESTIONS[lang]))
                    items.append(_item("arithmetic", lang, [q], answer, digits=digits, op=op))
    for i, it in enumerate(items):
        it["id"] = f"{it['kind']}-{it['lang']}-{i:05d}"
    return items


def _known(world: World, entity: Entity, unseen: Collection[str]) -> list[Fact]:
    return [f for f in world.facts_about(entity.id) if f.id not in unseen]


def _item(kind: str, lang: str, user: list[str], answer: str, **meta) -> dict:
    return {"kind": kind, "lang": lang, "messages": [{"role": "user", "content": u} for u in user],
            "answer": answer, "meta": meta}
