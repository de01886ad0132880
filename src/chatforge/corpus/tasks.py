"""Arithmetic word problems and small Python tasks, shared by pre-training text and SFT chats.

A `Problem` keeps its equations so tests (and later a GSM8K-format evaluation set) can check
every step; its worked solution always ends with the final number ("So the answer is 19." /
"Yani cevap 19."). A `CodeTask` keeps a signature, docstrings, body and asserts, the pieces a
HumanEval-format item needs. Some problems are built on the world's facts (ages from birth
years, sums of populations), so that arithmetic text also restates facts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from chatforge.corpus import turkish
from chatforge.corpus.facts import Fact
from chatforge.corpus.templates import display, fact_sentence
from chatforge.corpus.world import World

FINAL = {"en": "So the answer is {}.", "tr": "Yani cevap {}."}
OPS: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b,
    "÷": lambda a, b: a // b,
}


@dataclass(frozen=True)
class Item:
    en: str
    en_plural: str
    tr: str
    tr_acc: str  # definite accusative, "12 elmayı"


ITEMS = [Item(*row) for row in [
    ("apple", "apples", "elma", "elmayı"), ("book", "books", "kitap", "kitabı"),
    ("basket", "baskets", "sepet", "sepeti"), ("egg", "eggs", "yumurta", "yumurtayı"),
    ("pencil", "pencils", "kalem", "kalemi"), ("loaf", "loaves", "ekmek", "ekmeği"),
    ("flower", "flowers", "çiçek", "çiçeği"), ("stone", "stones", "taş", "taşı"),
    ("plate", "plates", "tabak", "tabağı"), ("candle", "candles", "mum", "mumu"),
]]


@dataclass
class Problem:
    """A word problem with its worked solution; `answer` is the final number as a string."""

    kind: str
    lang: str
    question: str
    solution: str
    answer: str
    equations: list[tuple[int, str, int, int]] = field(default_factory=list)
    fact_ids: list[str] = field(default_factory=list)  # facts the question states


def equation(a: int, op: str, b: int) -> tuple[tuple[int, str, int, int], str]:
    c = OPS[op](a, b)
    return (a, op, b, c), f"{a} {op} {b} = {c}"


def _finish(kind: str, lang: str, question: str, steps: list[str], eqs: list, answer: int,
            fact_ids: list[str] | None = None) -> Problem:
    solution = " ".join(steps + [FINAL[lang].format(answer)])
    return Problem(kind, lang, question, solution, str(answer), eqs, fact_ids or [])


def _add(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    p, it = rng.choice(world.of_kind("person")).name, rng.choice(ITEMS)
    a, b = rng.randrange(2, 60), rng.randrange(2, 60)
    eq, text = equation(a, "+", b)
    if lang == "en":
        q = (f"{p} bought {a} {it.en_plural} in the morning and {b} more in the afternoon. "
             f"How many {it.en_plural} did {p} buy in total?")
        steps = [f"In the morning {p} bought {a} {it.en_plural} and in the afternoon {b}.", text + "."]
    else:
        q = (f"{p} sabah {a} {it.tr} satın aldı, öğleden sonra {b} {it.tr} daha aldı. "
             f"{p} toplam kaç {it.tr} aldı?")
        steps = [f"{p} sabah {a}, öğleden sonra {b} {it.tr} aldı.", text + "."]
    return _finish("add", lang, q, steps, [eq], eq[3])


def _subtract(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    p, it = rng.choice(world.of_kind("person")).name, rng.choice(ITEMS)
    town = rng.choice(world.of_kind("town")).name
    a = rng.randrange(10, 90)
    b = rng.randrange(1, a)
    eq, text = equation(a, "-", b)
    if lang == "en":
        q = (f"{p} took {a} {it.en_plural} to the market in {town} and sold {b} of them. "
             f"How many {it.en_plural} were left?")
        steps = [f"{p} started with {a} {it.en_plural} and sold {b}.", text + "."]
    else:
        q = (f"{p}, {turkish.inflect(town, 'gen', proper=True)} pazarına {a} {it.tr} götürdü ve "
             f"bunların {b} tanesini sattı. Geriye kaç {it.tr} kaldı?")
        steps = [f"{p} {a} {it.tr} götürdü ve {b} tanesini sattı.", text + "."]
    return _finish("subtract", lang, q, steps, [eq], eq[3])


def _multiply(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    town, it = rng.choice(world.of_kind("town")).name, rng.choice(ITEMS)
    a, b = rng.randrange(2, 13), rng.randrange(2, 13)
    eq, text = equation(a, "×", b)
    if lang == "en":
        q = (f"In the market of {town} there are {a} boxes, and each box holds {b} "
             f"{it.en_plural}. How many {it.en_plural} are there in total?")
        steps = [f"There are {a} boxes with {b} {it.en_plural} each.", text + "."]
    else:
        q = (f"{turkish.inflect(town, 'gen', proper=True)} pazarında {a} kutu var ve her kutuda "
             f"{b} {it.tr} bulunuyor. Toplam kaç {it.tr} vardır?")
        steps = [f"{a} kutunun her birinde {b} {it.tr} var.", text + "."]
    return _finish("multiply", lang, q, steps, [eq], eq[3])


def _divide(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    p, it = rng.choice(world.of_kind("person")).name, rng.choice(ITEMS)
    b, c = rng.randrange(2, 10), rng.randrange(2, 13)
    eq, text = equation(b * c, "÷", b)
    if lang == "en":
        q = (f"{p} shared {b * c} {it.en_plural} equally among {b} friends. "
             f"How many {it.en_plural} did each friend get?")
        steps = [f"{b * c} {it.en_plural} are split into {b} equal parts.", text + "."]
    else:
        q = (f"{p}, {b * c} {it.tr_acc} {b} arkadaşı arasında eşit olarak paylaştırdı. "
             f"Her arkadaş kaç {it.tr} aldı?")
        steps = [f"{b * c} {it.tr} {b} kişiye eşit olarak bölünür.", text + "."]
    return _finish("divide", lang, q, steps, [eq], eq[3])


def _cost(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    p, it = rng.choice(world.of_kind("person")).name, rng.choice(ITEMS)
    a, b, d = rng.randrange(2, 12), rng.randrange(2, 15), rng.randrange(3, 40)
    eq1, t1 = equation(a, "×", b)
    eq2, t2 = equation(eq1[3], "+", d)
    if lang == "en":
        q = (f"{p} bought {a} {it.en_plural} at {b} coins each and a bag for {d} coins. "
             f"How many coins did {p} spend?")
        steps = [f"The {it.en_plural} cost {t1} coins.", f"Adding the bag: {t2}."]
    else:
        q = (f"{p} tanesi {b} akçeden {a} {it.tr} ve {d} akçelik bir çanta aldı. "
             f"{p} toplam kaç akçe harcadı?")
        steps = [f"{a} {it.tr} için {t1} akçe ödendi.", f"Çantayla birlikte: {t2}."]
    return _finish("two_step", lang, q, steps, [eq1, eq2], eq2[3])


def _age(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    fact = rng.choice([f for f in facts if f.relation == "birth_year"])
    born = int(fact.object)
    year = born + rng.randrange(5, 80)
    eq, text = equation(year, "-", born)
    stated = fact_sentence(fact, lang, rng.randrange(4))
    if lang == "en":
        q = f"{stated} How old was {fact.subject} in {year}?"
        steps = [f"{fact.subject} was born in {born}.", text + "."]
    else:
        q = f"{stated} {fact.subject}, {year} yılında kaç yaşındaydı?"
        steps = [f"{fact.subject} {born} yılında doğdu.", text + "."]
    return _finish("age", lang, q, steps, [eq], eq[3], [fact.id])


def _populations(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    f1, f2 = rng.sample([f for f in facts if f.relation == "population"], 2)
    eq, text = equation(int(f1.object), "+", int(f2.object))
    stated = f"{fact_sentence(f1, lang, rng.randrange(4))} {fact_sentence(f2, lang, rng.randrange(4))}"
    if lang == "en":
        q = f"{stated} How many people live in {f1.subject} and {f2.subject} together?"
    else:
        q = f"{stated} {f1.subject} ve {f2.subject} kasabalarında toplam kaç kişi yaşar?"
    return _finish("populations", lang, q, [text + "."], [eq], eq[3], [f1.id, f2.id])


def _rivers(rng: random.Random, world: World, lang: str, facts: list[Fact]) -> Problem:
    f1, f2 = sorted(rng.sample([f for f in facts if f.relation == "length"], 2),
                    key=lambda f: -int(f.object))
    eq, text = equation(int(f1.object), "-", int(f2.object))
    stated = f"{fact_sentence(f1, lang, rng.randrange(4))} {fact_sentence(f2, lang, rng.randrange(4))}"
    if lang == "en":
        q = (f"{stated} How many kilometres longer is {display(f1.subject, 'river', 'en')} "
             f"than {display(f2.subject, 'river', 'en')}?")
    else:
        other = turkish.inflect(display(f2.subject, "river", "tr"), "abl", True, True)
        q = f"{stated} {display(f1.subject, 'river', 'tr')}, {other} kaç kilometre daha uzundur?"
    return _finish("rivers", lang, q, [text + "."], [eq], eq[3], [f1.id, f2.id])


_GENERIC = (_add, _subtract, _multiply, _divide, _cost)
_WORLD = (_age, _populations, _rivers)


def word_problem(rng: random.Random, world: World, lang: str,
                 exclude_facts: Collection[str] = ()) -> Problem:
    """A random word problem in `lang`; world-based ones never state an excluded fact."""
    facts = [f for f in world.facts if f.id not in exclude_facts]
    usable = [g for g in _WORLD if _has_facts(g, facts)]
    make = rng.choice(usable) if usable and rng.random() < 0.35 else rng.choice(_GENERIC)
    return make(rng, world, lang, facts)


def _has_facts(make: Callable, facts: list[Fact]) -> bool:
    need = {_age: ("birth_year", 1), _populations: ("population", 2), _rivers: ("length", 2)}
    relation, n = need[make]
    return sum(f.relation == relation for f in facts) >= n


def drill(rng: random.Random, lang: str, n_lines: int) -> tuple[str, list[tuple[int, str, int, int]]]:
    """A practice sheet of bare equations ("12 + 7 = 19"), as in a school workbook."""
    op = rng.choice(list(OPS))
    title = {
        "en": {"+": "Addition practice", "-": "Subtraction practice",
               "×": "Multiplication table practice", "÷": "Division practice"},
        "tr": {"+": "Toplama alıştırması", "-": "Çıkarma alıştırması",
               "×": "Çarpım tablosu alıştırması", "÷": "Bölme alıştırması"},
    }[lang][op]
    lines, eqs = [title, ""], []
    for _ in range(n_lines):
        if op == "+":
            a, b = rng.randrange(0, 100), rng.randrange(0, 100)
        elif op == "-":
            a = rng.randrange(1, 100)
            b = rng.randrange(0, a + 1)
        elif op == "×":
            a, b = rng.randrange(1, 13), rng.randrange(1, 13)
        else:
            b = rng.randrange(1, 13)
            a = b * rng.randrange(0, 13)
        eq, text = equation(a, op, b)
        lines.append(text)
        eqs.append(eq)
    return "\n".join(lines), eqs
