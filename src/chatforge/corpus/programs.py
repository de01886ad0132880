"""Small Python functions with docstrings and asserts: generic ones and ones over world data.

Every task's asserts are computed by a reference implementation in this module, not written by
hand, so they are right by construction; tests run them. World tasks carry their data as a
module-level table (populations, birth years...), which restates facts in code form.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from chatforge.corpus.facts import Fact
from chatforge.corpus.world import World


@dataclass
class CodeTask:
    """One function: what the user asks for, its source and the asserts that check it."""

    name: str
    lang: str
    request: str  # the user's request, in `lang`
    signature: str  # "def gcd(a: int, b: int) -> int:"
    doc: str  # docstring text, in `lang`
    body: str  # function body, unindented
    tests: list[str]  # "assert gcd(12, 18) == 6"
    prelude: str = ""  # module-level data the function reads
    example: tuple[str, str] = ("", "")  # (call, repr of its value)
    fact_ids: list[str] = field(default_factory=list)

    def function(self) -> str:
        body = "\n".join("    " + line for line in self.body.splitlines())
        return f'{self.signature}\n    """{self.doc}"""\n{body}\n'

    def source(self, with_tests: bool = False) -> str:
        parts = [self.prelude + "\n\n" if self.prelude else "", self.function()]
        if with_tests:
            parts.append("\n\n" + "\n".join(self.tests) + "\n")
        return "".join(parts)


@dataclass(frozen=True)
class _Spec:
    name: str
    params: str
    returns: str
    doc_en: str
    doc_tr: str
    task_en: str  # completes "a function that ..."
    task_tr: str  # participle phrase: "... döndüren"
    body: str
    ref: Callable
    inputs: Callable[[random.Random], tuple]


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


_WORDS = ["level", "kayak", "river", "market", "merhaba", "kitap", "radar", "noon", "güneş",
          "deniz", "stats", "bread", "ekmek", "refer", "lamp"]


def _ints(lo: int, hi: int, k: int) -> Callable[[random.Random], tuple]:
    return lambda rng: tuple(rng.randrange(lo, hi) for _ in range(k))


def _int_list(rng: random.Random) -> tuple:
    return ([rng.randrange(-20, 100) for _ in range(rng.randrange(1, 7))],)


GENERIC = [
    _Spec("add_numbers", "a: int, b: int", "int", "Return the sum of a and b.",
          "a ile b'nin toplamını döndürür.", "returns the sum of a and b",
          "a ile b'nin toplamını döndüren", "return a + b", lambda a, b: a + b, _ints(-50, 100, 2)),
    _Spec("is_even", "n: int", "bool", "Return True if n is even, otherwise False.",
          "n çift ise True, değilse False döndürür.", "tells whether n is even",
          "n sayısının çift olup olmadığını söyleyen", "return n % 2 == 0",
          lambda n: n % 2 == 0, _ints(-20, 100, 1)),
    _Spec("factorial", "n: int", "int", "Return n!, the product 1 * 2 * ... * n.",
          "n! değerini, yani 1 * 2 * ... * n çarpımını döndürür.", "returns the factorial of n",
          "n sayısının faktöriyelini döndüren",
          "result = 1\nfor k in range(2, n + 1):\n    result *= k\nreturn result",
          math.factorial, _ints(0, 10, 1)),
    _Spec("fibonacci", "n: int", "int", "Return the n-th Fibonacci number; fibonacci(0) is 0.",
          "n'inci Fibonacci sayısını döndürür; fibonacci(0) değeri 0'dır.",
          "returns the n-th Fibonacci number", "n'inci Fibonacci sayısını döndüren",
          "a, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nreturn a", _fib, _ints(0, 20, 1)),
    _Spec("reverse_string", "s: str", "str", "Return the string s written backwards.",
          "s metnini tersten yazılmış olarak döndürür.", "reverses a string",
          "bir metni tersine çeviren", "return s[::-1]", lambda s: s[::-1],
          lambda rng: (rng.choice(_WORDS),)),
    _Spec("count_vowels", "s: str", "int", "Count the vowels a, e, i, o and u in s.",
          "s içindeki a, e, i, o ve u ünlülerini sayar.", "counts the vowels in a string",
          "bir metindeki ünlü harfleri sayan",
          'return sum(1 for ch in s.lower() if ch in "aeiou")',
          lambda s: sum(1 for ch in s.lower() if ch in "aeiou"), lambda rng: (rng.choice(_WORDS),)),
    _Spec("celsius_to_fahrenheit", "c: float", "float",
          "Convert a temperature from degrees Celsius to degrees Fahrenheit.",
          "Celsius cinsinden bir sıcaklığı Fahrenheit'a çevirir.",
          "converts Celsius to Fahrenheit", "Celsius değerini Fahrenheit'a çeviren",
          "return c * 9 / 5 + 32", lambda c: c * 9 / 5 + 32, _ints(-30, 45, 1)),
    _Spec("largest", "numbers: list[int]", "int", "Return the largest number of a non-empty list.",
          "Boş olmayan bir listedeki en büyük sayıyı döndürür.",
          "finds the largest number in a list", "bir listedeki en büyük sayıyı bulan",
          "best = numbers[0]\nfor x in numbers[1:]:\n    if x > best:\n        best = x\nreturn best",
          max, _int_list),
    _Spec("sum_list", "numbers: list[int]", "int", "Return the sum of all numbers in the list.",
          "Listedeki bütün sayıların toplamını döndürür.", "adds up all numbers in a list",
          "bir listedeki bütün sayıları toplayan",
          "total = 0\nfor x in numbers:\n    total += x\nreturn total", sum, _int_list),
    _Spec("is_palindrome", "s: str", "bool", "Return True if s reads the same forwards and backwards.",
          "s baştan ve sondan aynı okunuyorsa True döndürür.", "checks whether a word is a palindrome",
          "bir kelimenin tersten de aynı okunup okunmadığını kontrol eden",
          "return s == s[::-1]", lambda s: s == s[::-1], lambda rng: (rng.choice(_WORDS),)),
    _Spec("gcd", "a: int, b: int", "int", "Return the greatest common divisor of a and b.",
          "a ile b'nin en büyük ortak bölenini döndürür.",
          "returns the greatest common divisor of two numbers",
          "iki sayının en büyük ortak bölenini döndüren",
          "while b:\n    a, b = b, a % b\nreturn a", math.gcd, _ints(1, 100, 2)),
    _Spec("count_words", "text: str", "int", "Return the number of words in text.",
          "text içindeki kelime sayısını döndürür.", "counts the words in a text",
          "bir metindeki kelimeleri sayan", "return len(text.split())",
          lambda t: len(t.split()), lambda rng: (" ".join(rng.sample(_WORDS, rng.randrange(1, 6))),)),
    _Spec("square_all", "numbers: list[int]", "list[int]", "Return a list of the squares of numbers.",
          "numbers içindeki sayıların karelerinden oluşan bir liste döndürür.",
          "squares every number in a list", "bir listedeki her sayının karesini alan",
          "return [x * x for x in numbers]", lambda xs: [x * x for x in xs], _int_list),
    _Spec("average", "numbers: list[int]", "float", "Return the mean of a non-empty list of numbers.",
          "Boş olmayan bir sayı listesinin ortalamasını döndürür.",
          "computes the average of a list of numbers", "bir sayı listesinin ortalamasını hesaplayan",
          "return sum(numbers) / len(numbers)", lambda xs: sum(xs) / len(xs), _int_list),
]

_REQUESTS = {
    "en": ["Write a Python function `{sig}` that {task}.", "Can you write `{sig}` in Python? It {task}.",
           "I need a Python function called `{name}` that {task}.", "Implement `{sig}` in Python: it {task}."],
    # The task never starts a sentence: capitalising it would change a parameter's name.
    "tr": ["Python'da {task} `{sig}` adlı bir fonksiyon yaz.",
           "Python'da {task} bir `{name}` fonksiyonu yazar mısın?",
           "Lütfen {task} `{name}` fonksiyonunu Python ile yaz.",
           "Bana {task} bir Python fonksiyonu lazım: `{sig}`."],
}


def _request(rng: random.Random, lang: str, name: str, sig: str, task: str) -> str:
    frame = rng.choice(_REQUESTS[lang])
    return frame.format(sig=sig, name=name, task=task)


def _generic(rng: random.Random, lang: str) -> CodeTask:
    spec = rng.choice(GENERIC)
    cases = [spec.inputs(rng) for _ in range(3)]
    calls = [f"{spec.name}({', '.join(repr(a) for a in args)})" for args in cases]
    values = [repr(spec.ref(*args)) for args in cases]
    sig_short = f"{spec.name}({', '.join(p.split(':')[0] for p in spec.params.split(', '))})"
    return CodeTask(
        name=spec.name, lang=lang,
        request=_request(rng, lang, spec.name, sig_short, spec.task_en if lang == "en" else spec.task_tr),
        signature=f"def {spec.name}({spec.params}) -> {spec.returns}:",
        doc=spec.doc_en if lang == "en" else spec.doc_tr, body=spec.body,
        tests=[f"assert {c} == {v}" for c, v in zip(calls, values, strict=True)],
        example=(calls[0], values[0]),
    )


def _table(name: str, rows: dict[str, object]) -> str:
    lines = [f"{name} = {{"] + [f"    {k!r}: {v!r}," for k, v in rows.items()] + ["}"]
    return "\n".join(lines)


def _world(rng: random.Random, world: World, lang: str, exclude: Collection[str]) -> CodeTask:
    """A lookup over a table of the world's facts (populations, birth years, jobs, rivers)."""
    def facts_of(relation: str) -> list[Fact]:
        return [f for f in world.facts if f.relation == relation and f.id not in exclude]

    options = [r for r in ("population", "birth_year", "profession", "river")
               if len(facts_of(r)) >= 2]
    if not options:
        return _generic(rng, lang)
    relation = rng.choice(options)
    chosen = rng.sample(facts_of(relation), min(len(facts_of(relation)), rng.randrange(3, 7)))
    value = {f.subject: f.answer(lang) for f in chosen}
    pick = rng.choice(chosen)
    en = lang == "en"
    if relation == "population":
        rows = {k: int(v) for k, v in value.items()}
        name, sig, table = "population_of", "def population_of(town: str) -> int:", "POPULATION"
        doc = "Return the number of people who live in town." if en else "Kasabada yaşayan kişi sayısını döndürür."
        task = "returns the population of a town from the POPULATION table" if en else \
            "POPULATION tablosundan bir kasabanın nüfusunu döndüren"
        body, call, result = "return POPULATION[town]", f"population_of({pick.subject!r})", rows[pick.subject]
    elif relation == "birth_year":
        rows = {k: int(v) for k, v in value.items()}
        year = rng.randrange(1960, 2030)
        name, sig, table = "age_in", "def age_in(person: str, year: int) -> int:", "BIRTH_YEAR"
        doc = "Return how old person was (or will be) in year." if en else \
            "Kişinin verilen yıldaki yaşını döndürür."
        task = "returns a person's age in a given year, using the BIRTH_YEAR table" if en else \
            "BIRTH_YEAR tablosunu kullanarak bir kişinin verilen yıldaki yaşını döndüren"
        body = "return year - BIRTH_YEAR[person]"
        call, result = f"age_in({pick.subject!r}, {year})", year - rows[pick.subject]
    elif relation == "profession":
        rows = dict(value)
        name, sig, table = "people_with_job", "def people_with_job(job: str) -> list[str]:", "JOBS"
        doc = "Return the sorted names of the people who have this job." if en else \
            "Bu mesleğe sahip kişilerin adlarını sıralı olarak döndürür."
        task = "lists, in sorted order, the people in the JOBS table who have a given job" if en else \
            "JOBS tablosunda verilen mesleğe sahip kişileri sıralı olarak listeleyen"
        body = "return sorted(name for name, j in JOBS.items() if j == job)"
        job = rows[pick.subject]
        call, result = f"people_with_job({job!r})", sorted(k for k, v in rows.items() if v == job)
    else:
        rows = dict(value)
        name, sig, table = "towns_on", "def towns_on(river: str) -> list[str]:", "RIVER"
        doc = "Return the sorted names of the towns that lie on river." if en else \
            "Nehrin kıyısındaki kasabaların adlarını sıralı olarak döndürür."
        task = "lists, in sorted order, the towns in the RIVER table that lie on a given river" if en else \
            "RIVER tablosunda verilen nehrin kıyısındaki kasabaları sıralı olarak listeleyen"
        body = "return sorted(town for town, r in RIVER.items() if r == river)"
        river = rows[pick.subject]
        call, result = f"towns_on({river!r})", sorted(k for k, v in rows.items() if v == river)
    comment = "# Data from the towns and people of the land." if en else \
        "# Ülkenin kasabaları ve insanlarıyla ilgili veriler."
    return CodeTask(
        name=name, lang=lang, request=_request(rng, lang, name, sig[4:-1].split(" ->")[0], task),
        signature=sig, doc=doc, body=body, tests=[f"assert {call} == {result!r}"],
        prelude=f"{comment}\n{_table(table, rows)}", example=(call, repr(result)),
        fact_ids=[f.id for f in chosen],
    )


def code_task(rng: random.Random, world: World, lang: str,
              exclude_facts: Collection[str] = ()) -> CodeTask:
    """A random task: a third over the world's data, the rest generic small functions."""
    if rng.random() < 1 / 3:
        return _world(rng, world, lang, exclude_facts)
    return _generic(rng, lang)
