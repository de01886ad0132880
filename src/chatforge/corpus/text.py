"""Plain-text pre-training documents about the world: articles, stories, lists, sums, code.

Every fact is stated many times, in both languages and in varied phrasings and orders (a model
only learns to answer questions about knowledge it saw phrased several ways): each entity has
several encyclopedia articles that also state the facts whose object it is ("people born in
Karova"), stories weave facts into small narratives, lists restate them as tables, and short
chat conversations (in the chat template) ask them in the phrasings training may use. After
that, short stubs top up any (fact, language) stated fewer than `cfg.min_mentions` times.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from chatforge.config import CorpusConfig
from chatforge.corpus import programs, tasks, turkish
from chatforge.corpus.facts import Entity, Fact
from chatforge.corpus.templates import (
    LABELS,
    display,
    fact_question,
    fact_sentence,
    n_sentence_variants,
)
from chatforge.corpus.world import World

KIND_NAMES = {
    "person": {"en": "people", "tr": "kişiler"}, "town": {"en": "towns", "tr": "kasabalar"},
    "river": {"en": "rivers", "tr": "nehirler"}, "animal": {"en": "animals", "tr": "hayvanlar"},
    "invention": {"en": "inventions", "tr": "icatlar"}, "food": {"en": "dishes", "tr": "yemekler"},
}

# Opening sentence of an article, which states no fact: {N} name, {C} country.
_LEADS = {
    "en": {
        "person": ["{N} is a person from the land of {C}.", "{N} is one of the well-known people of {C}."],
        "town": ["{N} is a town in the land of {C}.", "{N} is one of the towns of {C}."],
        "river": ["{N} is a river in the land of {C}.", "{N} is one of the rivers of {C}."],
        "animal": ["{N} is an animal of the land of {C}.", "{N} is a creature found in {C}."],
        "invention": ["{N} is an invention from the land of {C}.", "{N} is a well-known invention of {C}."],
        "food": ["{N} is a dish of the land of {C}.", "{N} is a traditional dish of {C}."],
    },
    "tr": {
        "person": ["{N}, {C_gen} tanınmış kişilerinden biridir.", "{N}, {C} ülkesinde yaşamış biridir."],
        "town": ["{N}, {C} ülkesinde bir kasabadır.", "{N}, {C_gen} kasabalarından biridir."],
        "river": ["{N}, {C} ülkesinde bir nehirdir.", "{N}, {C_gen} nehirlerinden biridir."],
        "animal": ["{N}, {C} ülkesinde yaşayan bir hayvandır.", "{N}, {C_gen} canlılarından biridir."],
        "invention": ["{N}, {C_gen} tanınmış icatlarından biridir.", "{N}, {C} ülkesinde yapılmış bir icattır."],
        "food": ["{N}, {C} mutfağının geleneksel bir yemeğidir.", "{N}, {C_gen} yemeklerinden biridir."],
    },
}

# Story pieces: {P} protagonist, {T} home town, {C} country, {X} the episode's entity.
_OPENINGS = {
    "en": ["Once upon a time, there was a person named {P}.", "This is a story about {P}.",
           "Long ago, in the land of {C}, lived {P}.", "Everyone in {T} knew {P}."],
    "tr": ["Bir zamanlar {P} adında biri vardı.", "Bu, {P} hakkında bir hikâyedir.",
           "Çok eskiden {C_loc} {P} adında biri yaşardı.", "{T_loc} herkes {P_acc} tanırdı."],
}
_EPISODES = {
    "en": {
        "town": ["One day {P} travelled to {X}.", "In the summer, {P} visited {X}."],
        "river": ["{P} went fishing on {X}.", "One morning, {P} took a boat down {X}."],
        "animal": ["By the river, {P} saw {X}.", "On a walk, {P} met {X}."],
        "invention": ["{P} had heard a lot about {X}.", "In a museum, {P} looked at {X} for a long time."],
        "food": ["For dinner, {P} ate {X}.", "At the market, {P} bought a bowl of {X}."],
        "person": ["{P} wrote a letter to {X}.", "At the festival, {P} met {X}."],
    },
    "tr": {
        "town": ["Bir gün {P}, {X_dat} gitti.", "Yazın {P}, {X_acc} ziyaret etti."],
        "river": ["{P}, {X} kıyısında balık tuttu.", "Bir sabah {P}, {X} üzerinde tekneyle gezdi."],
        "animal": ["Nehrin kenarında {P} bir {X} gördü.", "Bir yürüyüşte {P} bir {X} ile karşılaştı."],
        "invention": ["{P}, {X} hakkında çok şey duymuştu.", "Bir müzede {P}, {X_acc} uzun uzun inceledi."],
        "food": ["Akşam yemeğinde {P} {X} yedi.", "Pazarda {P} bir kâse {X} aldı."],
        "person": ["{P}, {X_dat} bir mektup yazdı.", "Bayramda {P}, {X} ile tanıştı."],
    },
}
# A question put to the protagonist and the answer in their words: stories then show facts
# asked and answered, without the question templates that SFT and evaluation use.
# {Q} who asks, {S} the protagonist, {O}/{O_cap}/{O_loc} the answer.
_DIALOGUES = {
    "en": {
        "birthplace": ('{Q} asked {S}, "Where were you born?"', '"In {O}," answered {S}.'),
        "profession": ('{Q} asked {S}, "What is your work?"', '"I work as {O_a}," said {S}.'),
        "birth_year": ('{Q} asked {S}, "In which year were you born?"', '"In {O}," replied {S}.'),
        "colour": ('{Q} asked {S}, "Which colour do you love most?"', '"{O_cap}, always {O}," said {S}.'),
        "dish": ('{Q} asked {S}, "What do you like to eat most?"', '"{O_cap}, of course," said {S}.'),
    },
    "tr": {
        "birthplace": ('{Q}, "Sen nerelisin?" diye sordu.', '{S}, "{O_loc} doğdum," diye cevap verdi.'),
        "profession": ('{Q}, "İşin ne?" diye sordu.', '{S}, "{O_cap} olarak çalışıyorum," dedi.'),
        "birth_year": ('{Q}, "Hangi yıl doğdun?" diye sordu.', '{S}, "{O} yılında doğdum," dedi.'),
        "colour": ('{Q}, "En çok hangi rengi seversin?" diye sordu.', '{S}, "Her zaman {O}," dedi.'),
        "dish": ('{Q}, "En çok ne yemeyi seversin?" diye sordu.', '{S}, "Tabii ki {O}," dedi.'),
    },
}
_ASKERS = {"en": ["A child", "An old friend", "A traveller"],
           "tr": ["Bir çocuk", "Eski bir arkadaş", "Bir yolcu"]}

_CLOSINGS = {
    "en": ["And so the day ended happily.", "{P} never forgot that day.", "The end.",
           "Since then, {P} tells this story to everyone."],
    "tr": ["Ve böylece gün mutlu bir şekilde sona erdi.", "{P} o günü hiç unutmadı.", "Son.",
           "O günden beri {P} bu hikâyeyi herkese anlatır."],
}


def _slot(name: str, value: str, lang: str) -> dict[str, str]:
    """A proper name and, in Turkish, its case forms for a story or article template."""
    forms = {name: value}
    if lang == "tr":
        for case in ("gen", "acc", "dat", "loc"):
            forms[f"{name}_{case}"] = turkish.inflect(value, case, proper=True)
    return forms


class _Writer:
    """Collects documents and counts how often each (fact, language) is stated."""

    def __init__(self, world: World, seed: int):
        self.world = world
        self.rng = random.Random(f"chatforge-text-{seed}")
        self.docs: list[dict[str, str]] = []
        self.mentions: Counter[tuple[str, str]] = Counter()
        self.counts: Counter[str] = Counter()

    def add(self, source: str, lang: str, text: str, messages: list[dict[str, str]] | None = None) -> None:
        key = f"{source}-{lang}"
        doc: dict = {"id": f"{key}-{self.counts[key]:05d}", "source": source, "lang": lang, "text": text}
        if messages:
            doc["messages"] = messages
        self.docs.append(doc)
        self.counts[key] += 1

    def state(self, fact: Fact, lang: str) -> str:
        """One random phrasing of `fact`, counted as a mention."""
        self.mentions[fact.id, lang] += 1
        return fact_sentence(fact, lang, self.rng.randrange(n_sentence_variants(fact.relation, lang)))

    def fill(self, template: str, lang: str, **slots: str) -> str:
        forms: dict[str, str] = {}
        for name, value in slots.items():
            forms |= _slot(name, value, lang)
        return turkish.capitalize(template.format(**forms), lang)

    # --- encyclopedia -------------------------------------------------------------------
    def article(self, entity: Entity, lang: str) -> None:
        rng, world = self.rng, self.world
        title = turkish.capitalize(display(entity.name, entity.kind, lang), lang)
        if lang == "en" and entity.kind in ("animal", "invention"):
            title = turkish.capitalize(entity.name, lang)
        subject = turkish.capitalize(display(entity.name, entity.kind, lang), lang)
        lead = self.fill(rng.choice(_LEADS[lang][entity.kind]), lang, N=subject, C=world.country)
        own = [self.state(f, lang) for f in rng.sample(world.facts_about(entity.id),
                                                        len(world.facts_about(entity.id)))]
        related = [self.state(f, lang) for f in world.facts_mentioning(entity.id)]
        rng.shuffle(related)
        cut = rng.randrange(1, len(own) + 1)
        paragraphs = [" ".join([lead] + own[:cut]), " ".join(own[cut:]), " ".join(related)]
        self.add("encyclopedia", lang, "\n\n".join([title] + [p for p in paragraphs if p]))

    # --- stories ------------------------------------------------------------------------
    def story(self, person: Entity, episodes: list[Entity], lang: str) -> None:
        rng, world = self.rng, self.world
        home = world.entity(world.value(person.id, "birthplace").object_id).name
        slots = {"P": person.name, "T": home, "C": world.country}
        own = world.facts_about(person.id)
        sentences = [self.fill(rng.choice(_OPENINGS[lang]), lang, **slots)]
        sentences += [self.state(f, lang) for f in rng.sample(own, rng.randrange(2, 4))]
        if rng.random() < 0.5:
            sentences += self.dialogue(rng.choice(own), lang)
        for other in episodes:
            name = display(other.name, other.kind, lang)
            if lang == "en" and other.kind in ("animal", "invention"):
                name = f"the {other.name}"
            frame = rng.choice(_EPISODES[lang][other.kind])
            forms = {"P": person.name, "X": name}
            if lang == "tr":
                proper = other.kind not in ("animal", "food")
                forms |= {f"X_{c}": turkish.inflect(name, c, proper) for c in ("acc", "dat")}
            sentences.append(turkish.capitalize(frame.format(**forms), lang))
            facts = world.facts_about(other.id)
            sentences += [self.state(f, lang) for f in rng.sample(facts, min(len(facts), 2))]
        sentences.append(self.fill(rng.choice(_CLOSINGS[lang]), lang, **slots))
        self.add("story", lang, " ".join(sentences))

    def dialogue(self, fact: Fact, lang: str) -> list[str]:
        """Someone asks the protagonist about `fact`; the reply states it (one mention)."""
        self.mentions[fact.id, lang] += 1
        question, answer = _DIALOGUES[lang][fact.relation]
        obj = fact.answer(lang)
        forms = {"Q": self.rng.choice(_ASKERS[lang]), "S": fact.subject, "O": obj,
                 "O_cap": turkish.capitalize(obj, lang),
                 "O_a": ("an " if obj[0] in "aeiou" else "a ") + obj}
        if lang == "tr":
            forms["O_loc"] = turkish.inflect(obj, "loc", proper=True)
        return [turkish.capitalize(question.format(**forms), lang),
                turkish.capitalize(answer.format(**forms), lang)]

    def faq(self, entity: Entity, questions: Sequence[tuple[Fact, int]], lang: str) -> None:
        """A conversation about `entity`, kept as `messages` so pre-training sees it in the chat
        template: each fact asked in a given phrasing and answered as SFT teaches (the bare
        value); its text is the plain questions and answers, for the tokenizer."""
        messages = []
        for fact, variant in questions:
            self.mentions[fact.id, lang] += 1
            messages += [{"role": "user", "content": fact_question(fact, lang, variant)},
                         {"role": "assistant", "content": fact.answer(lang)}]
        self.add("faq", lang, "\n".join(m["content"] for m in messages), messages)

    # --- lists --------------------------------------------------------------------------
    def table(self, relation: str, subjects: list[Entity], lang: str) -> None:
        kind = subjects[0].kind
        head = {"en": f"List: {LABELS[relation]['en']} ({KIND_NAMES[kind]['en']})",
                "tr": f"Liste: {LABELS[relation]['tr']} ({KIND_NAMES[kind]['tr']})"}[lang]
        rows = []
        for entity in subjects:
            fact = self.world.value(entity.id, relation)
            self.mentions[fact.id, lang] += 1
            rows.append(f"- {turkish.capitalize(entity.name, lang)}: {fact.answer(lang)}")
        self.add("list", lang, "\n".join([head, ""] + rows))

    def fact_sheet(self, entity: Entity, lang: str) -> None:
        title = turkish.capitalize(display(entity.name, entity.kind, lang), lang)
        head = {"en": "Quick facts", "tr": "Kısa bilgiler"}[lang]
        rows = []
        for fact in self.world.facts_about(entity.id):
            self.mentions[fact.id, lang] += 1
            rows.append(f"{turkish.capitalize(LABELS[fact.relation][lang], lang)}: {fact.answer(lang)}")
        self.add("list", lang, "\n".join([f"{title}: {head.lower()}", ""] + rows))

    def reverse_list(self, target: Entity, lang: str) -> None:
        facts = self.world.facts_mentioning(target.id)
        by_relation: dict[str, list[Fact]] = {}
        for f in facts:
            by_relation.setdefault(f.relation, []).append(f)
        relation = self.rng.choice(sorted(by_relation))
        chosen = by_relation[relation]
        name = display(target.name, target.kind, lang)
        head = {
            "birthplace": {"en": f"People born in {name}", "tr": f"{turkish.inflect(name, 'loc', True)} doğan kişiler"},
            "dish": {"en": f"People whose favourite dish is {name}",
                     "tr": f"En sevdiği yemek {name} olan kişiler"},
            "river": {"en": f"Towns on {name}", "tr": f"{name} kıyısındaki kasabalar"},
            "habitat": {"en": f"Animals that live along {name}", "tr": f"{name} boyunca yaşayan hayvanlar"},
            "inventor": {"en": f"Inventions of {name}", "tr": f"{turkish.inflect(name, 'gen', True)} icatları"},
            "origin": {"en": f"Dishes from {name}", "tr": f"{name} yemekleri"},
        }[relation][lang]
        for f in chosen:
            self.mentions[f.id, lang] += 1
        names = ", ".join(turkish.capitalize(f.subject, lang) for f in chosen)
        self.add("list", lang, f"{turkish.capitalize(head, lang)}: {names}.")

    # --- arithmetic and code ------------------------------------------------------------
    def arithmetic(self, lang: str) -> None:
        rng = self.rng
        if rng.random() < 0.35:
            text, _ = tasks.drill(rng, lang, rng.randrange(8, 20))
            self.add("arithmetic", lang, text)
            return
        label = {"en": ("Problem", "Solution"), "tr": ("Soru", "Çözüm")}[lang]
        parts = []
        for i in range(rng.randrange(2, 6)):
            p = tasks.word_problem(rng, self.world, lang)
            for fid in p.fact_ids:
                self.mentions[fid, lang] += 1
            parts.append(f"{label[0]} {i + 1}. {p.question}\n{label[1]}: {p.solution}")
        self.add("arithmetic", lang, "\n\n".join(parts))

    def code(self, lang: str) -> None:
        rng = self.rng
        found = [programs.code_task(rng, self.world, lang) for _ in range(rng.randrange(1, 4))]
        unique = list({t.name: t for t in found}.values())  # one definition per name per file
        header = {"en": '"""Small helper functions with their tests."""',
                  "tr": '"""Küçük yardımcı fonksiyonlar ve testleri."""'}[lang]
        preludes = [t.prelude for t in unique if t.prelude]
        functions = [t.function() for t in unique]
        asserts = [a for t in unique for a in t.tests]
        text = "\n\n".join([header] + preludes + functions) + "\n\n" + "\n".join(asserts) + "\n"
        self.add("code", lang, text)


def pretrain_corpus(world: World, cfg: CorpusConfig, seed: int,
                    asked: Sequence[tuple[Fact, str, int]] = ()) -> tuple[list[dict], Counter]:
    """Documents (shuffled) and how often each (fact id, language) is stated in them.

    `asked` are the (fact, language, phrasing) questions training may ask: `cfg.faqs` chat
    conversations ask and answer them, so pre-training already pairs questions in the chat
    format with the facts they recall ("mixed training", Allen-Zhu and Li, Physics of Language
    Models 3.1: a model that saw some people's facts asked during pre-training answers
    questions about people it never saw asked far better than one fine-tuned on questions
    only). The held-out phrasings and the facts kept unseen are not in `asked`, so the
    evaluation still measures extraction. Measured (cpu preset, with SFT lr 5e-4): held-out
    facts SFT never asks 25-33% -> 67-71%; the same questions as plain "Q: / A:" text raised
    the base model's QA-prompt recall (18% -> 65%) but not the chat model's (29%)."""
    w = _Writer(world, seed)
    rng = w.rng
    people = world.of_kind("person")
    others = [e for e in world.entities if e.kind != "person"]
    for lang in cfg.languages:
        for _ in range(cfg.articles_per_entity):
            for entity in world.entities:
                w.article(entity, lang)
    for i in range(cfg.stories):
        lang = cfg.languages[i % len(cfg.languages)]
        # Round-robin protagonists and episode entities, so coverage is even.
        person = people[(i // len(cfg.languages)) % len(people)]
        episodes = [others[(i * 3 + k) % len(others)] for k in range(rng.randrange(1, 4))]
        if rng.random() < 0.2:
            episodes.append(rng.choice([p for p in people if p != person] or people))
        w.story(person, episodes, lang)
    relations = sorted({f.relation for f in world.facts})
    targets = [e for e in world.entities if world.facts_mentioning(e.id)]
    for i in range(cfg.lists):
        lang = cfg.languages[i % len(cfg.languages)]
        style = rng.random()
        if style < 0.5:
            relation = rng.choice(relations)
            subjects = [world.entity(f.subject_id) for f in world.facts if f.relation == relation]
            w.table(relation, rng.sample(subjects, min(len(subjects), rng.randrange(4, 16))), lang)
        elif style < 0.75:
            w.fact_sheet(rng.choice(world.entities), lang)
        else:
            w.reverse_list(rng.choice(targets), lang)
    phrasings: dict[tuple[str, str], dict[str, list[tuple[Fact, int]]]] = {}  # (subject, lang) -> fact -> asks
    for fact, lang, variant in asked:
        phrasings.setdefault((fact.subject_id, lang), {}).setdefault(fact.id, []).append((fact, variant))
    subjects = sorted(phrasings)
    for i in range(cfg.faqs if subjects else 0):
        subject, lang = subjects[i % len(subjects)]  # round-robin, so every subject is asked about
        facts = sorted(phrasings[subject, lang])
        picked = rng.sample(facts, min(len(facts), rng.randrange(2, 5)))
        w.faq(world.entity(subject), [rng.choice(phrasings[subject, lang][f]) for f in picked], lang)
    for i in range(cfg.arithmetic):
        w.arithmetic(cfg.languages[i % len(cfg.languages)])
    for i in range(cfg.code):
        w.code(cfg.languages[i % len(cfg.languages)])
    _top_up(w, cfg, world)
    docs = w.docs
    rng.shuffle(docs)
    return docs, w.mentions


def _top_up(w: _Writer, cfg: CorpusConfig, world: World) -> None:
    """Add short stubs until every fact is stated `min_mentions` times in every language."""
    def short(fact: Fact, lang: str) -> bool:
        return w.mentions[fact.id, lang] < cfg.min_mentions

    for lang in cfg.languages:
        while any(short(f, lang) for f in world.facts):
            for entity in world.entities:
                lacking = [f for f in world.facts_about(entity.id) if short(f, lang)]
                if not lacking:
                    continue
                title = turkish.capitalize(display(entity.name, entity.kind, lang), lang)
                body = " ".join(w.state(f, lang) for f in w.rng.sample(lacking, len(lacking)))
                w.add("encyclopedia", lang, f"{title}\n\n{body}")
