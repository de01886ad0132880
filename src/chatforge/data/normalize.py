"""Text normalisation: Unicode clean-up for documents, and the canonical form used to compare them.

Two different things live here on purpose. `clean_text` is what a kept document's text becomes
(NFC, no control characters, tidy whitespace). `canonical_words` is what dedup and
decontamination compare (lowercase, no punctuation, digits folded to 0, accents removed, as
FineWeb's MinHash does), so that trivial edits cannot hide a duplicate.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

import numpy as np

# C0/C1 controls except tab/newline, zero-width characters, BOM, soft hyphen.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_NON_WORD = re.compile(r"[\W_]+")
_DIGIT = re.compile(r"\d")
# Combining diacritical marks (the blocks NFKD moves accents into).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def clean_text(text: str, form: str = "NFC") -> str:
    """Unicode-normalise a document and tidy its whitespace, keeping paragraph breaks."""
    text = unicodedata.normalize(form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def strip_accents(text: str) -> str:
    """Remove combining marks (é -> e, ş -> s); dotless ı has no decomposition and stays."""
    if text.isascii():  # the common case costs nothing
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def canonical_text(text: str) -> str:
    """The comparison form: lowercase, no accents, digits -> 0, words separated by spaces.

    Every non-word character (punctuation, underscore, any whitespace) becomes a space, so
    words are exactly the runs of non-space characters.
    """
    return _DIGIT.sub("0", _NON_WORD.sub(" ", strip_accents(text.lower())))


# The same mapping for pure-ASCII text as one bytes.translate table (the common, fast path).
_ASCII_TABLE = bytes(
    ord("0") if chr(i).isdigit() else ord(chr(i).lower()) if chr(i).isalpha() else ord(" ")
    for i in range(256)
)


def canonical_bytes(text: str) -> bytes:
    """`canonical_text` as UTF-8 bytes; ASCII text takes a single table lookup per byte."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_TABLE)
    return canonical_text(text).encode("utf-8")


def canonical_words(text: str) -> list[str]:
    """Words of the comparison form (see `canonical_text`)."""
    return canonical_text(text).split()


_BYTE_MULT = 0x100000001B3  # FNV-1a's 64-bit prime; odd, so invertible modulo 2**64
_BYTE_MULT_INV = pow(_BYTE_MULT, -1, 2**64)


@functools.lru_cache(maxsize=4)
def _power_table(base: int, size: int) -> np.ndarray:
    out = np.full(size, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


def _powers(base: int, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64 (a cached table, grown in powers of two)."""
    return _power_table(base, 1 << max(10, (n - 1).bit_length()))[:n]


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the canonical words of many texts at once, and words per text.

    A word's hash is the polynomial sum(c_k * M**(len-1-k)) of its UTF-8 bytes (mixed). All
    words of all texts are hashed in a few numpy passes: with prefix sums G of the bytes
    weighted by M**(N-1-k), a word [s, e) is (G[e] - G[s]) * M**-(N-e), M being odd and so
    invertible modulo 2**64. No Python loop runs per word; Python's own `hash` would anyway
    differ between worker processes.
    """
    parts = [canonical_bytes(t) for t in texts]
    data = np.frombuffer(b" ".join(parts), dtype=np.uint8)
    n = len(data)
    if n == 0:
        return np.empty(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
    in_word = data != 32
    before = np.concatenate(([False], in_word[:-1]))
    after = np.concatenate((in_word[1:], [False]))
    starts = np.flatnonzero(in_word & ~before)
    ends = np.flatnonzero(in_word & ~after) + 1
    weights = _powers(_BYTE_MULT, n)[::-1]  # M**(N-1-k)
    prefix = np.concatenate(([np.uint64(0)], np.cumsum((data.astype(np.uint64) + 1) * weights, dtype=np.uint64)))
    unscale = _powers(_BYTE_MULT_INV, n + 1)
    hashes = mix64((prefix[ends] - prefix[starts]) * unscale[n - ends])
    text_starts = np.cumsum([0] + [len(p) + 1 for p in parts[:-1]])
    counts = np.bincount(np.searchsorted(text_starts, starts, side="right") - 1, minlength=len(texts))
    return hashes, counts.astype(np.int64)


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


def text_ngrams(texts: list[str], n: int) -> list[np.ndarray]:
    """Per text, the hashes of its word n-grams (a text of 1..n-1 words: one gram of them all).

    Windows are computed once over all texts' words; those crossing a text boundary are
    simply never referenced.
    """
    hashes, counts = word_hashes(texts)
    ends = np.cumsum(counts)
    grams = ngram_hashes(hashes, n)
    out = []
    for start, end in zip((ends - counts).tolist(), ends.tolist(), strict=True):
        if end - start >= n:
            out.append(grams[start : end - n + 1])
        else:
            out.append(ngram_hashes(hashes[start:end], end - start) if end > start else hashes[:0])
    return out


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
