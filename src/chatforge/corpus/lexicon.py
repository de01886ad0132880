"""Closed vocabularies of the invented world (English + Turkish) and its name generator.

Attribute values come from small closed sets so that a tiny model can learn them from a few
minutes of text, and so that answers are one or two words. Each value carries the Turkish forms
the templates need where they are not regular suffixes (e.g. "kuzeyinde" for a region).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from chatforge.errors import ConfigError


@dataclass(frozen=True)
class Word:
    """One closed-set value: English and Turkish forms (singular answers)."""

    en: str
    tr: str
    en_plural: str = ""  # English plural where a template needs it
    tr_extra: str = ""  # Turkish form a template needs (see the table using it)


COLOURS = [Word(e, t) for e, t in [
    ("red", "kırmızı"), ("blue", "mavi"), ("green", "yeşil"), ("yellow", "sarı"),
    ("purple", "mor"), ("orange", "turuncu"), ("white", "beyaz"), ("black", "siyah"),
    ("grey", "gri"), ("pink", "pembe"),
]]

PROFESSIONS = [Word(e, t) for e, t in [
    ("baker", "fırıncı"), ("teacher", "öğretmen"), ("fisher", "balıkçı"), ("doctor", "doktor"),
    ("farmer", "çiftçi"), ("potter", "çömlekçi"), ("carpenter", "marangoz"),
    ("tailor", "terzi"), ("painter", "ressam"), ("musician", "müzisyen"),
    ("sailor", "denizci"), ("weaver", "dokumacı"), ("poet", "şair"), ("engineer", "mühendis"),
]]

# tr_extra: "<region> of the country" in the locative ("ülkenin kuzeyinde").
REGIONS = [
    Word("north", "kuzey", tr_extra="kuzeyinde"), Word("south", "güney", tr_extra="güneyinde"),
    Word("east", "doğu", tr_extra="doğusunda"), Word("west", "batı", tr_extra="batısında"),
]

INGREDIENTS = [Word(e, t) for e, t in [
    ("rice", "pirinç"), ("wheat", "buğday"), ("lentils", "mercimek"), ("fish", "balık"),
    ("apples", "elma"), ("honey", "bal"), ("cheese", "peynir"), ("walnuts", "ceviz"),
    ("chickpeas", "nohut"), ("plums", "erik"),
]]

TASTES = [Word(e, t) for e, t in [
    ("sweet", "tatlı"), ("salty", "tuzlu"), ("sour", "ekşi"), ("spicy", "acı"),
]]

ANIMAL_KINDS = [Word(e, t, en_plural=p) for e, t, p in [
    ("bird", "kuş", "birds"), ("fish", "balık", "fish"), ("lizard", "kertenkele", "lizards"),
    ("beetle", "böcek", "beetles"), ("deer", "geyik", "deer"), ("frog", "kurbağa", "frogs"),
    ("snake", "yılan", "snakes"), ("butterfly", "kelebek", "butterflies"),
]]

DIETS = [Word(e, t) for e, t in [
    ("seeds", "tohum"), ("fish", "balık"), ("insects", "böcek"), ("grass", "ot"),
    ("fruit", "meyve"), ("leaves", "yaprak"), ("worms", "solucan"),
]]

DEVICE_KINDS = [Word(e, t) for e, t in [
    ("lamp", "lamba"), ("clock", "saat"), ("boat", "tekne"), ("loom", "dokuma tezgâhı"),
    ("pump", "pompa"), ("bicycle", "bisiklet"), ("kite", "uçurtma"), ("telescope", "teleskop"),
    ("plough", "saban"), ("stove", "soba"),
]]

# Relation -> its closed set of values.
VOCABULARY: dict[str, list[Word]] = {
    "profession": PROFESSIONS, "colour": COLOURS, "region": REGIONS,
    "animal_kind": ANIMAL_KINDS, "animal_colour": COLOURS, "diet": DIETS,
    "device_kind": DEVICE_KINDS, "ingredient": INGREDIENTS, "taste": TASTES,
}


def word(relation: str, en: str) -> Word:
    """The closed-set value of `relation` whose English form is `en`."""
    for w in VOCABULARY[relation]:
        if w.en == en:
            return w
    raise KeyError(f"{relation}: unknown value {en!r}")


# Real first names and surnames; the people who bear them are invented. One name list per
# gender so that English text can use the right pronoun.
FIRST_NAMES_F = [
    "Elif", "Ayşe", "Zeynep", "Selin", "Defne", "Meltem", "Gülşen", "Özlem", "Şule", "Nilüfer",
    "Çiğdem", "Yasemin", "Ebru", "Derya", "Sevgi", "Tülay", "Alice", "Clara", "Edith", "Harriet",
    "Margaret", "Rosalind", "Vera", "Lydia", "Nora", "Beatrice", "Agnes", "Ruth", "Mabel", "Ida",
    "Hülya", "Pınar", "Filiz", "Dilek", "Aylin",
]
FIRST_NAMES_M = [
    "Mehmet", "Ahmet", "Kemal", "Orhan", "Selim", "Tarık", "Özgür", "Barış", "Çetin", "Doğan",
    "Ilgaz", "Murat", "Emre", "Cengiz", "Yavuz", "Hakan", "Thomas", "Arthur", "Edmund", "Walter",
    "Henry", "Oliver", "Samuel", "Felix", "Hugo", "Jasper", "Rupert", "Cyril", "Ernest", "Oscar",
    "Kaan", "Serkan", "Tuncay", "Volkan", "Levent",
]
# Turkish surnames only: a Turkish case ending follows the pronunciation of the last syllable,
# which the spelling of a Turkish name gives and an English one ("Hartley", "Stanhope") does not.
SURNAMES = [
    "Karaca", "Yıldız", "Demir", "Aksoy", "Öztürk", "Çelik", "Şahin", "Aydın", "Kurtuluş",
    "Erdem", "Güneş", "Tekin", "Uçar", "Bozkurt", "Koçak", "Ertuğrul", "Yücel", "Kalkan",
    "Duman", "Gündoğdu", "Özkan", "Işıklar", "Toprak", "Akyol", "Ulusoy", "Kıraç", "Sönmez",
    "Arslan", "Polat", "Kaplan", "Doğru", "Eren", "Korkmaz", "Yalçın", "Ünal", "Keskin",
    "Bulut", "Ateş", "Çınar", "Akın", "Acar", "Başaran", "Coşkun", "Durmaz", "Erol", "Kılıç",
    "Oral", "Özer", "Sezer", "Uysal", "Yazıcı", "Zengin", "Altun", "Bilgin", "Candan",
    "Dinçer", "Ekinci", "Fırat", "Gürsoy", "Hamzaoğlu", "Kocabaş", "Tüfekçi", "Önal",
]

# Repeated letters are drawn more often: names of mostly common letters are fewer tokens.
_ONSETS = list("bdgklmnprstvyz" * 3 + "çşh")
_VOWELS = list("aeiou" * 3 + "öüı")
_CODAS = ["l", "n", "r", "m", "s", "z", "y", "ş"]  # never a consonant that softens (p ç t k)
_FRONT, _BACK = set("eiöü"), set("aıou")
MAX_ATTEMPTS = 100_000


def _harmonic(vowels: list[str]) -> bool:
    """Keep invented words pronounceable in Turkish: all front or all back vowels."""
    return all(v in _FRONT for v in vowels) or all(v in _BACK for v in vowels)


def invent_name(rng: random.Random, syllables: int, taken: set[str]) -> str:
    """A new lower-case word of CV syllables (the last may end in a safe consonant).

    Rejects words that contain, or are contained in, a name already taken, so that no name
    is a substring of another and exact-match scoring cannot be fooled by a shorter name.
    """
    for _ in range(MAX_ATTEMPTS):
        vowels = [rng.choice(_VOWELS) for _ in range(syllables)]
        if not _harmonic(vowels):
            continue
        parts = [rng.choice(_ONSETS) + v for v in vowels]
        if rng.random() < 0.6:
            parts[-1] += rng.choice(_CODAS)
        name = "".join(parts)
        if name[0] in "iı" or any(name in t or t in name for t in taken):
            continue
        taken.add(name)
        return name
    raise ConfigError(
        f"corpus: no new {syllables}-syllable name after {MAX_ATTEMPTS} tries; "
        "make the world smaller (corpus.n_rivers, corpus.n_animals, ...)"
    )
