"""Just enough Turkish morphology to inflect the invented world's names correctly.

Turkish case endings follow vowel harmony (two-way e/a, four-way i/ı/u/ü) and consonant
assimilation (d -> t after a voiceless consonant), take a buffer consonant after a vowel, and are
separated from proper names by an apostrophe ("Karova'da", "Elif Kaya'nın"). A noun that already
ends in the 3rd-person possessive ("Durna Nehri", "Velin Denizi") takes an n-buffer instead
("Durna Nehri'nde", "Velin Denizi'ne"). The generator only invents words whose last consonant
does not soften before a vowel (no final p, ç, t, k), so no stem changes are ever needed.
"""

from __future__ import annotations

_BACK = set("aıouâû")
_VOWELS = set("aeıioöuüâîû")
_VOICELESS = set("fstkçşhp")
_FOUR_WAY = {"a": "ı", "ı": "ı", "â": "ı", "e": "i", "i": "i", "î": "i",
             "o": "u", "u": "u", "û": "u", "ö": "ü", "ü": "ü"}

# Case -> (buffer after a vowel, buffer after a possessive ending, ending pattern).
# In patterns, A is the two-way vowel, I the four-way vowel and D the assimilating d/t.
_CASES = {
    "gen": ("n", "n", "In"),     # genitive: Karova'nın, Kaya'nın
    "acc": ("y", "n", "I"),      # accusative: Morvela'yı, Durna Nehri'ni
    "dat": ("y", "n", "A"),      # dative: Karova'ya, Velin Denizi'ne
    "loc": ("", "n", "DA"),      # locative: Karova'da, Belkent'te, Durna Nehri'nde
    "abl": ("", "n", "DAn"),     # ablative: Karova'dan, pirinçten
    "ins": ("y", "y", "lA"),     # instrumental: tohumla, meyveyle
    "cop": ("", "", "DIr"),      # copula: fırıncıdır, mühendistir, Karova'dır
}


def lower(text: str) -> str:
    """Turkish lower case: I -> ı and İ -> i (str.lower gets both wrong)."""
    return text.replace("I", "ı").replace("İ", "i").lower()


def capitalize(text: str, lang: str) -> str:
    """Upper-case the first letter; in Turkish i -> İ and ı -> I."""
    if not text:
        return text
    first = text[0]
    if lang == "tr" and first in "iı":
        first = "İ" if first == "i" else "I"
    else:
        first = first.upper()
    return first + text[1:]


# Loan words whose suffixes take front vowels despite a back last vowel (saati, saatte).
_FRONT_LOANS = ("saat",)


def last_vowel(word: str) -> str:
    low = lower(word)
    if low.endswith(_FRONT_LOANS):
        return "e"
    for ch in reversed(low):
        if ch in _VOWELS:
            return ch
    return "e"  # a word without vowels (an abbreviation) is read with front vowels


def inflect(word: str, case: str, proper: bool = False, possessive: bool = False) -> str:
    """`word` with a case ending: `proper` adds the apostrophe, `possessive` the n-buffer."""
    buffer_vowel, buffer_poss, pattern = _CASES[case]
    low = lower(word)
    vowel = last_vowel(word)
    ends_in_vowel = low[-1] in _VOWELS
    ending = ""
    for ch in pattern:
        if ch == "A":
            ending += "a" if vowel in _BACK else "e"
        elif ch == "I":
            ending += _FOUR_WAY[vowel]
        elif ch == "D":
            ending += "t" if low[-1] in _VOICELESS else "d"
        else:
            ending += ch
    if possessive:
        ending = buffer_poss + ending
    elif ends_in_vowel:
        ending = buffer_vowel + ending
    return word + ("'" if proper else "") + ending
