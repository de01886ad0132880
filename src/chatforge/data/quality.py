"""Heuristic quality filters: Gopher quality and repetition, C4 line rules, FineWeb's own rules.

Each filter takes a text and returns the reason it fails (a short stable string that becomes a
funnel counter) or None when the text passes; the C4 filter also rewrites the text, because
C4 drops bad lines before judging the document. Thresholds come from `QualityConfig` (defaults
are the published ones: Rae et al. 2021, Raffel et al. 2020, Penedo et al. 2024); per-language differences are the stop-word lists
below and `DataConfig.quality_overrides` ("tr:gopher_max_mean_word_len=12").
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from chatforge.config import QualityConfig, set_value
from chatforge.errors import ConfigError

# Gopher's stop words for English; for other languages the most frequent function words.
STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"the", "be", "to", "of", "and", "that", "have", "with"}),
    "tr": frozenset({"ve", "bir", "bu", "da", "de", "için", "ile", "olarak", "çok", "gibi"}),
    "de": frozenset({"der", "die", "das", "und", "ist", "zu", "den", "mit", "von"}),
    "fr": frozenset({"le", "la", "les", "de", "et", "est", "que", "des", "un", "une"}),
    "es": frozenset({"el", "la", "de", "que", "y", "en", "los", "las", "un", "una"}),
}

BULLETS = ("•", "-", "*", "·", "‣", "◦")
ELLIPSES = ("...", "…")
END_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "»", "…")
POLICY_PHRASES = (
    "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
    "use cookies", "terms and conditions",
)
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_HAS_ALNUM = re.compile(r"\w")


def thresholds_for(cfg: QualityConfig, language: str, overrides: list[str]) -> QualityConfig:
    """The thresholds to use for one language: the config plus its `lang:key=value` overrides."""
    out = dataclasses.replace(cfg)
    for item in overrides:
        lang, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not sep or not eq:
            raise ConfigError(
                f"data.quality_overrides: {item!r} is not of the form lang:key=value"
            )
        if lang == language:
            set_value(out, key.strip(), value.strip(), parse=True, where="data.quality_overrides")
    return out


def gopher_quality(text: str, language: str, t: QualityConfig) -> str | None:
    """Gopher (Rae et al. 2021) document quality rules on whitespace words and lines."""
    words = text.split()
    n_words = len(words)
    content = [w for w in words if _HAS_ALNUM.search(w)]
    if len(content) < t.gopher_min_words:
        return "gopher_too_few_words"
    if len(content) > t.gopher_max_words:
        return "gopher_too_many_words"
    mean_len = sum(len(w) for w in content) / len(content)
    if mean_len < t.gopher_min_mean_word_len:
        return "gopher_short_words"
    if mean_len > t.gopher_max_mean_word_len:
        return "gopher_long_words"
    if text.count("#") / n_words > t.gopher_max_symbol_ratio:
        return "gopher_hash_ratio"
    if sum(text.count(e) for e in ELLIPSES) / n_words > t.gopher_max_symbol_ratio:
        return "gopher_ellipsis_ratio"
    lines = [line for line in text.splitlines() if line.strip()]
    if sum(line.lstrip().startswith(BULLETS) for line in lines) / len(lines) > t.gopher_max_bullet_lines:
        return "gopher_bullet_lines"
    if sum(line.rstrip().endswith(ELLIPSES) for line in lines) / len(lines) > t.gopher_max_ellipsis_lines:
        return "gopher_ellipsis_lines"
    if sum(any(c.isalpha() for c in w) for w in words) / n_words < t.gopher_min_alpha_words:
        return "gopher_non_alpha_words"
    stop = STOP_WORDS.get(language)
    if stop is not None:
        lowered = (w.lower().strip(".,;:!?\"'()") for w in words)
        if sum(w in stop for w in lowered) < t.gopher_min_stop_words:
            return "gopher_few_stop_words"
    return None


def _duplicates(items: list[str]) -> tuple[int, int]:
    """Number of items seen before, and their characters (first occurrences are not counted)."""
    seen: set[str] = set()
    n = chars = 0
    for item in items:
        if item in seen:
            n += 1
            chars += len(item)
        else:
            seen.add(item)
    return n, chars


def _top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram, counted only if it repeats."""
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    # A single occurrence is not repetition; short texts would otherwise always fail.
    return len(gram) * count if count > 1 else 0


def _duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters in n-grams that already occurred, skipping past each repeat (no overlap)."""
    seen: set[tuple[str, ...]] = set()
    chars = i = 0
    while i <= len(words) - n:
        gram = tuple(words[i : i + n])
        if gram in seen:
            chars += sum(len(w) for w in gram) + n - 1
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def gopher_repetition(text: str, t: QualityConfig) -> str | None:
    """Gopher repetition rules: duplicate paragraphs/lines and repeated n-gram character shares."""
    size = len(text)
    if size == 0:
        return "empty"
    paragraphs = _PARAGRAPHS.split(text.strip())
    n, chars = _duplicates(paragraphs)
    if n / len(paragraphs) > t.gopher_dup_para_frac:
        return "gopher_dup_paragraphs"
    if chars / size > t.gopher_dup_para_char_frac:
        return "gopher_dup_paragraph_chars"
    lines = _LINES.split(text.strip())
    n, chars = _duplicates(lines)
    if n / len(lines) > t.gopher_dup_line_frac:
        return "gopher_dup_lines"
    if chars / size > t.gopher_dup_line_char_frac:
        return "gopher_dup_line_chars"
    words = text.split()
    for n_gram, limit in zip((2, 3, 4), t.gopher_top_ngram_frac, strict=True):
        if _top_ngram_chars(words, n_gram) / size > limit:
            return f"gopher_top_{n_gram}gram"
    for n_gram, limit in zip(range(5, 11), t.gopher_dup_ngram_frac, strict=True):
        if _duplicated_ngram_chars(words, n_gram) / size > limit:
            return f"gopher_dup_{n_gram}gram"
    return None


def count_sentences(text: str) -> int:
    """Sentences in a line: runs of terminal punctuation, plus a trailing unterminated one."""
    ends = len(_SENTENCE_END.findall(text))
    tail = _SENTENCE_END.split(text)[-1].strip()
    return ends + (1 if tail else 0)


def c4_filter(text: str, t: QualityConfig) -> tuple[str, str | None]:
    """C4 (Raffel et al. 2020) rules: drop bad lines, then judge what is left.

    Returns (new_text, reason); reason is None when the document is kept.
    """
    kept: list[str] = []
    sentences = 0
    for raw in text.split("\n"):
        line = raw.strip()
        words = line.split()
        if not words or any(len(w) > t.c4_max_word_len for w in words):
            continue
        line = CITATION.sub("", line).strip()
        if t.c4_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSES)):
            continue
        if len(words) < t.c4_min_words_per_line:
            continue
        lowered = line.lower()
        if "lorem ipsum" in lowered:
            return text, "c4_lorem_ipsum"
        if "javascript" in lowered:
            continue
        if "{" in line:
            return text, "c4_curly_bracket"
        if any(p in lowered for p in POLICY_PHRASES):
            continue
        sentences += count_sentences(line)
        kept.append(line)
    if sentences < t.c4_min_sentences:
        return text, "c4_too_few_sentences"
    return "\n".join(kept), None


def fineweb_filter(text: str, t: QualityConfig) -> str | None:
    """FineWeb's own rules (Penedo et al. 2024): punctuation, duplicated and short lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return "empty"
    if sum(line.rstrip().endswith(END_PUNCTUATION) for line in lines) / len(lines) < t.fineweb_min_punct_lines:
        return "fineweb_punct_lines"
    if sum(len(line) <= t.fineweb_short_line_chars for line in lines) / len(lines) > t.fineweb_max_short_lines:
        return "fineweb_short_lines"
    _, dup_chars = _duplicates(lines)
    if dup_chars / max(1, len(text.replace("\n", ""))) > t.fineweb_max_dup_line_chars:
        return "fineweb_dup_line_chars"
    if text.count("\n") / max(1, len(text.split())) > t.fineweb_max_newline_ratio:
        return "fineweb_newline_ratio"
    return None
