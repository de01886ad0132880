"""Text normalisation: Unicode clean-up for documents, and the canonical form used to compare them.

Two different things live here on purpose. `clean_text` is what a kept document's text becomes
(NFC, no control characters, tidy whitespace). `canonical_words` is what dedup and
decontamination compare (lowercase, no punctuation, digits folded to 0, accents removed, as
FineWeb's MinHash does), so that trivial edits cannot hide a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

# C0/C1 controls except tab/newline, zero-width characters, BOM, soft hyphen.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_NON_WORD = re.compile(r"[^\w\s]+")
_DIGIT = re.compile(r"\d")


def clean_text(text: str, form: str = "NFC") -> str:
    """Unicode-normalise a document and tidy its whitespace, keeping paragraph breaks."""
    text = unicodedata.normalize(form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def strip_accents(text: str) -> str:
    """Remove combining marks (é -> e, ş -> s); dotless ı has no decomposition and stays."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def canonical_words(text: str) -> list[str]:
    """Words of the comparison form: lowercase, punctuation dropped, digits -> 0, no accents."""
    text = strip_accents(text.lower())
    text = _NON_WORD.sub(" ", text)
    text = _DIGIT.sub("0", text)
    return text.split()


def hash_words(words: list[str], cache: dict[str, int] | None = None) -> np.ndarray:
    """Stable 64-bit hash of each word (blake2b), computed once per distinct word.

    Python's own `hash` is salted per process, so it would differ between workers.
    """
    cache = {} if cache is None else cache
    out = np.empty(len(words), dtype=np.uint64)
    for i, word in enumerate(words):
        h = cache.get(word)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            cache[word] = h
        out[i] = h
    return out


_NGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of every run of `n` consecutive words (vectorised polynomial combine).

    uint64 arithmetic wraps modulo 2**64, which is the intended ring here.
    """
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        acc = np.zeros(count, dtype=np.uint64)
        for k in range(n):
            acc = acc * _NGRAM_MULT + word_hashes[k : k + count]
        return mix64(acc)


def mix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer (splitmix64 finaliser) so that similar inputs spread out."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def text_fingerprint(text: str) -> int:
    """64-bit hash of a text with whitespace collapsed: the key of exact deduplication."""
    blob = " ".join(text.split()).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little")
