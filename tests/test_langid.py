"""Combined language ID (fastText + py3langid, lingua where unsure) on short and damaged text."""

from __future__ import annotations

import unicodedata

import pytest
from conftest import SHARED_DATA, shared_file

from chatforge.data import langid
from chatforge.data.langid import UNDETERMINED, detect, detect_batch
from chatforge.data.normalize import strip_accents


def _languages() -> list[str]:
    folder = shared_file("lingua-langid-sentences")
    return sorted(p.stem for p in folder.glob("*.txt"))


def _lines(lang: str, start: int, step: int) -> list[str]:
    path = SHARED_DATA / "lingua-langid-sentences" / f"{lang}.txt"
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[start::step]


def _stripped(text: str) -> str:
    """Accents removed as a careless pipeline would (Hangul recomposed, it is not an accent)."""
    return unicodedata.normalize("NFC", strip_accents(text))


def _per_language(start: int, step: int, damage=None) -> dict[str, float]:
    out = {}
    for lang in _languages():
        texts = _lines(lang, start, step)
        texts = [damage(t) for t in texts] if damage else texts
        out[lang] = sum(code == lang for code, _ in detect_batch(texts)) / len(texts)
    return out


def test_every_language_of_the_lingua_sentences_at_least_97_percent():
    """A third of each file (lines the combination rules were not chosen on: odd ones too)."""
    accuracy = _per_language(start=1, step=3)
    assert len(accuracy) == 20
    assert min(accuracy.values()) >= 0.97, accuracy


def test_accent_stripped_sentences_stay_accurate():
    accuracy = _per_language(start=2, step=4, damage=_stripped)
    assert accuracy["es"] >= 0.97, accuracy
    assert min(accuracy.values()) >= 0.93, accuracy  # stripped Swedish reads like Norwegian


def test_agreeing_fast_detectors_settle_most_sentences_without_lingua(monkeypatch):
    """The speed of the combination rests on lingua being asked for a small share of text."""
    texts = [t for lang in _languages() for t in _lines(lang, 0, 20)]
    asked = []
    real = langid._detector

    def counting(languages):
        detector = real(languages)

        class Counting:
            def compute_language_confidence_values(self, text):
                asked.append(text)
                return detector.compute_language_confidence_values(text)

            def compute_language_confidence_values_in_parallel(self, batch):
                asked.extend(batch)
                return detector.compute_language_confidence_values_in_parallel(batch)

        return Counting()

    monkeypatch.setattr(langid, "_detector", counting)
    results = detect_batch(texts)
    assert len(asked) < 0.25 * len(texts)
    assert all(0.0 < confidence <= 1.0 for _, confidence in results)


def test_votes_and_settling_rules():
    assert langid._settled({"en": 0.9, "de": 0.1}, {"en": 0.6}) == ("en", 0.9)
    assert langid._settled({"en": 0.9}, {"de": 0.6}) is None  # disagreement asks lingua
    assert langid._settled({"en": 0.5, "de": 0.4}, {"en": 0.9}) is None  # unsure fastText too
    # lingua's strong "sv" outvotes fastText's weak "nn" and py3langid's "no" (=nb)
    assert langid._vote({"nn": 0.5, "sv": 0.4}, {"nb": 0.7, "sv": 0.3}, {"sv": 0.9}) == ("sv", 0.533333)
    assert langid._vote({}, {}, {}) == (UNDETERMINED, 0.0)


def test_codes_are_iso_639_1_and_restricted_sets_hold():
    assert langid._iso("arz") == "ar" and langid._iso("yue") == "zh" and langid._iso("en") == "en"
    assert detect("Merhaba, bugün hava çok güzel ve parkta yürüyoruz.", ["en", "tr"])[0] == "tr"
    code, confidence = detect("The committee will meet again next week to vote.", ["en", "tr"])
    assert code == "en" and confidence > 0.9
    assert detect("!!! 123 ...") == (UNDETERMINED, 0.0)


@pytest.mark.parametrize("text", ["Bonjour", "ok", "Hola, ¿qué tal?"])
def test_tiny_texts_get_a_language_and_a_confidence(text):
    code, confidence = detect(text)
    assert code != UNDETERMINED and 0.0 < confidence <= 1.0
