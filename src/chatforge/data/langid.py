"""Language identification with lingua (its n-gram models ship inside the wheel: no downloads).

`detect(text) -> (iso_639_1, confidence)`; 'und' with confidence 0 where nothing can be told
(empty text, digits, punctuation). Detectors are built once per language set, lazily, in
lingua's high-accuracy mode (low-accuracy mode is off: it is faster but much worse on short
text). Restricting the candidate set to the languages a corpus can contain is both faster and
more accurate, but the set must hold every language the corpus may contain (a German page
judged among {en, tr} is called one of them); bench/bench_extract.py measures both.
Only a prefix of long documents is read: lingua's time is linear in the text, and a few
thousand characters settle the language of a page as well as the whole of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from chatforge.errors import ConfigError

UNDETERMINED = "und"
# Characters of a document that the detector reads (cut at whitespace).
PREFIX_CHARS = 2000


@lru_cache(maxsize=8)
def _detector(languages: frozenset[str] | None):
    """A lingua detector for these ISO 639-1 codes (None: all of lingua's 75 languages)."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if languages is None:
        builder = LanguageDetectorBuilder.from_all_languages()
    else:
        codes = []
        for code in sorted(languages):
            try:
                codes.append(getattr(IsoCode639_1, code.upper()))
            except AttributeError:
                raise ConfigError(f"language '{code}' is not one lingua can detect") from None
        if len(codes) < 2:
            raise ConfigError("a restricted language set needs at least two languages")
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    # Models stay lazily loaded: lingua loads a language's model only when a text's script
    # leaves that language possible, so an English/Turkish corpus never loads the CJK ones.
    # Loading all 75 (a Latin-script text can wake most) costs ~9 s and ~0.9 GiB per process.
    return builder.build()


def _key(languages: Iterable[str] | None) -> frozenset[str] | None:
    return None if languages is None else frozenset(c.lower() for c in languages)


def _prefix(text: str) -> str:
    if len(text) <= PREFIX_CHARS:
        return text
    cut = text.rfind(" ", 0, PREFIX_CHARS)
    return text[: cut if cut > 0 else PREFIX_CHARS]


def _best(values) -> tuple[str, float]:
    if not values or values[0].value <= 0.0:
        return UNDETERMINED, 0.0
    top = values[0]
    # Rounded: lingua's parallel and serial paths differ in the last bits, and a threshold
    # must give the same answer whichever executor ran it.
    return top.language.iso_code_639_1.name.lower(), round(float(top.value), 6)


def detect(text: str, languages: Iterable[str] | None = None) -> tuple[str, float]:
    """(ISO 639-1 code, confidence in [0, 1]) of the text; ('und', 0.0) if it has no language."""
    if not text.strip():
        return UNDETERMINED, 0.0
    values = _detector(_key(languages)).compute_language_confidence_values(_prefix(text))
    return _best(values)


def detect_batch(
    texts: Sequence[str], languages: Iterable[str] | None = None
) -> list[tuple[str, float]]:
    """`detect` over many texts at once, using lingua's own thread pool."""
    detector = _detector(_key(languages))
    results: list[tuple[str, float]] = [(UNDETERMINED, 0.0)] * len(texts)
    todo = [i for i, t in enumerate(texts) if t.strip()]
    values = detector.compute_language_confidence_values_in_parallel(
        [_prefix(texts[i]) for i in todo]
    )
    for i, v in zip(todo, values, strict=True):
        results[i] = _best(v)
    return results
