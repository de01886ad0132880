"""Byte-level BPE tokenizers: training with Hugging Face `tokenizers`, loading tiktoken files.

Both kinds share one interface (`Tokenizer`): encode text to ids, decode ids to bytes or text,
look up the chat special tokens. Training is byte-level, so every Unicode string round-trips
exactly (`decode(encode(s)) == s`): the 256 byte symbols are always in the vocabulary.
Encoding runs on tiktoken for both kinds (measured here: ~3x `tokenizers` on batches, ~10x on
one long text); for our own tokenizers, tests pin tiktoken's ids to those of the `tokenizers`
model that was trained.

Pre-tokenisation is GPT-4's split regex with three changes:
- letters are `[\\p{L}\\p{M}]`, so combining marks (NFD text, Devanagari vowel signs) stay
  inside their word instead of becoming punctuation tokens;
- the English contractions ('s 'd 'll ...) only split off when no letter follows, so the
  Turkish suffixes of proper nouns ("İstanbul'da", "Ankara'dan") stay one piece "'da";
- digits are single tokens (GPT-4 groups 1-3, nanochat 1-2): every number decomposes the same
  way, which helps small models on the arithmetic the built-in corpus teaches, at a small cost
  in compression (numbers are a few percent of text).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import tiktoken
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from chatforge.errors import ConfigError, InputError
from chatforge.tokenizer.specials import SPECIAL_TOKENS

SPLIT_PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)(?![\p{L}\p{M}])"
    r"|[^\r\n\p{L}\p{M}\p{N}]?+[\p{L}\p{M}]+"
    r"|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]++[\r\n]*"
    r"|\s*[\r\n]"
    r"|\s+(?!\S)"
    r"|\s+"
)

# Split regexes of OpenAI's rank files, so a .tiktoken file encodes exactly as tiktoken does.
# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14), whose loaders would download.
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_TIKTOKEN_PATTERNS = {
    "cl100k_base": _CL100K_PATTERN,
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
    "r50k_base": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
}


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of the GPT-2 byte-to-printable-character map used by ByteLevel pre-tokenisation."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + shifted)
            shifted += 1
    return {c: b for b, c in chars.items()}


class Tokenizer(ABC):
    """Text <-> token ids, with the chat special tokens of SPECIAL_TOKENS.

    Both kinds encode with tiktoken's BPE (one Rust call per text, batches on threads): given
    the merge ranks, the split regex and the special tokens, that is the whole tokenizer.
    Subclasses build those from their file format and know how to save themselves.
    """

    def __init__(self, name: str, pattern: str, ranks: dict[bytes, int], special: dict[str, int]):
        self._special = special
        self._enc = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
        table = [b""] * (len(ranks) + len(special))
        for piece, i in ranks.items():
            table[i] = piece
        for piece, i in special.items():
            table[i] = piece.encode("utf-8")
        self._id_bytes = table
        self._pattern = pattern

    def digest(self) -> str:
        """A digest of what the tokenizer does: its split pattern and every id's bytes."""
        h = hashlib.sha256(self._pattern.encode())
        for piece in self._id_bytes:
            h.update(len(piece).to_bytes(4, "little") + piece)
        return h.hexdigest()

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write the tokenizer into `directory` so that `load_tokenizer(directory)` reads it."""

    def encode(self, text: str, allowed_special: bool = False) -> list[int]:
        """Ids of `text`; special-token strings in it are plain text unless `allowed_special`,
        so user text containing "<|bos|>" can never inject a control token."""
        if allowed_special:
            return self._enc.encode(text, allowed_special="all")
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts at once (parallel, no special tokens): the fast path for corpora."""
        return self._enc.encode_ordinary_batch(list(texts))

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Exact bytes of the ids; a single id may hold part of a UTF-8 character."""
        table = self._id_bytes
        ids = ids.tolist() if hasattr(ids, "tolist") else [int(i) for i in ids]  # tensors, arrays
        if ids and not 0 <= min(ids) <= max(ids) < len(table):
            bad = next(i for i in ids if not 0 <= i < len(table))
            raise ValueError(f"token id {bad} is outside the vocabulary (size {len(table)})")
        return b"".join([table[i] for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; an incomplete UTF-8 sequence (e.g. a truncated sample) becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    @property
    def vocab_size(self) -> int:
        return len(self._id_bytes)

    def special_id(self, name: str) -> int:
        """Id of a special token, e.g. special_id("<|user_start|>")."""
        try:
            return self._special[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a special token of this tokenizer") from None

    @property
    def bos_id(self) -> int:
        return self._special["<|bos|>"]

    @property
    def eot_id(self) -> int:
        return self._special["<|eot|>"]

    @property
    def pad_id(self) -> int:
        return self._special["<|pad|>"]

    @property
    def special_ids(self) -> set[int]:
        return set(self._special.values())


class BPETokenizer(Tokenizer):
    """A byte-level BPE in Hugging Face `tokenizers` format (tokenizer.json), as `train_bpe` makes.

    `hf` trains, saves, and is the reference encoder: its merges become tiktoken ranks (a
    merge's rank is the id of the token it makes), and tests pin tiktoken's ids to `hf`'s.
    The special tokens hold ids 0-12 (in SPECIAL_TOKENS order), then come the 256 byte
    symbols, then the merges in the order they were learnt.
    """

    def __init__(self, hf: HFTokenizer, source: str = "<memory>"):
        vocab = hf.get_vocab(with_added_tokens=True)
        missing = [s for s in SPECIAL_TOKENS if s not in vocab]
        if missing:
            raise InputError(f"{source}: tokenizer lacks the chat special tokens {missing}")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise InputError(f"{source}: token ids are not 0..{len(vocab) - 1} without gaps")
        special = {s: vocab[s] for s in SPECIAL_TOKENS}
        added = {t.content for t in hf.get_added_tokens_decoder().values()}
        decoder = _byte_decoder()
        ranks: dict[bytes, int] = {}
        for piece, i in vocab.items():
            if piece in added:
                continue
            if not all(c in decoder for c in piece):
                raise InputError(f"{source}: token {piece!r} is not byte-level BPE (GPT-2 byte alphabet)")
            ranks[bytes(decoder[c] for c in piece)] = i
        if len(ranks) + len(special) != len(vocab):
            raise InputError(f"{source}: added tokens other than the chat special tokens are not supported")
        super().__init__("chatforge-bpe", SPLIT_PATTERN, ranks, special)
        self.hf = hf

    def pre_tokenize(self, text: str) -> list[str]:
        """The pieces the split regex cuts `text` into; BPE merges never cross their borders."""
        pieces = self.hf.pre_tokenizer.pre_tokenize_str(text)
        return [text[start:end] for _, (start, end) in pieces]

    def save(self, directory: str | Path) -> Path:
        from chatforge.runs import atomic_write_text

        path = Path(directory) / "tokenizer.json"
        atomic_write_text(path, self.hf.to_str(pretty=True))
        return path

    def to_json(self) -> str:
        """The tokenizer.json text (what `save` writes); compact, for hashing and comparison."""
        return self.hf.to_str()


class TiktokenTokenizer(Tokenizer):
    """An OpenAI rank file (e.g. cl100k_base.tiktoken), ids identical to tiktoken's.

    The chat special tokens get the ids after the last rank; the file's own special tokens
    (<|endoftext|> ...) are not defined in it and are not used. The split regex is chosen by
    the file name (cl100k_base, o200k_base, r50k_base); other names get cl100k's.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        ranks = _read_tiktoken_ranks(self.path)
        special = {s: len(ranks) + k for k, s in enumerate(SPECIAL_TOKENS)}
        pattern = _TIKTOKEN_PATTERNS.get(self.path.stem, _CL100K_PATTERN)
        super().__init__(self.path.stem, pattern, ranks, special)

    def save(self, directory: str | Path) -> Path:
        from chatforge.runs import atomic_write_bytes

        path = Path(directory) / self.path.name
        if path.resolve() != self.path.resolve():
            atomic_write_bytes(path, self.path.read_bytes())
        return path


def _read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Parse `base64(token) rank` lines, as tiktoken's own loader does, without its URL cache."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read tiktoken file ({exc.strerror})") from None
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:
            raise InputError(f"{path}:{lineno}: not a 'base64 rank' line") from None
    if not ranks:
        raise InputError(f"{path}: empty tiktoken file (no 'base64 rank' lines)")
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise InputError(f"{path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer directory (tokenizer.json or one *.tiktoken), a tokenizer.json or a rank file."""
    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").exists():
            path = path / "tokenizer.json"
        else:
            ranks = sorted(path.glob("*.tiktoken"))
            if len(ranks) != 1:
                raise InputError(f"{path}: holds no tokenizer.json and not exactly one *.tiktoken file")
            path = ranks[0]
    if not path.is_file():
        raise InputError(f"{path}: no such tokenizer file or directory")
    if path.suffix == ".tiktoken":
        return TiktokenTokenizer(path)
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise InputError(f"{path}: not a tokenizers JSON file ({exc})") from None
    return BPETokenizer(hf, source=str(path))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _limit_chars(texts: Iterable[str], max_chars: int | None) -> Iterator[str]:
    """The texts, the last one cut so that at most `max_chars` characters pass in total.

    A lone surrogate (a JSON "\\ud800" escape, or a surrogateescape'd byte) cannot become
    UTF-8 bytes and would abort the whole training: it is replaced by U+FFFD, one character
    for one, rather than dropping a whole ~1 MB piece of text."""
    left = max_chars
    for text in texts:
        if not text.isascii():
            text = _SURROGATE.sub("\ufffd", text)
        if left is not None:
            if left <= 0:
                return
            text = text[:left]
            left -= len(text)
        yield text


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    min_frequency: int = 2,
    max_chars: int | None = None,
) -> BPETokenizer:
    """Train a byte-level BPE to `vocab_size` ids (special tokens and the 256 bytes included).

    Stops earlier when no pair occurs `min_frequency` times, so a small corpus can give a
    smaller vocabulary; read `.vocab_size` rather than assuming the target. Deterministic for
    the same texts in the same order.
    """
    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ConfigError(f"vocab_size={vocab_size}: must be at least {minimum} (bytes + special tokens)")
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=SPECIAL_TOKENS,
        show_progress=sys.stderr.isatty(),
    )
    hf.train_from_iterator(_limit_chars(texts, max_chars), trainer)
    return BPETokenizer(hf)


# Training reads text in pieces of about this many characters: big enough to keep the
# Rust side busy, small enough that a multi-GB file never sits in memory at once.
_CHUNK_CHARS = 1 << 20


def iter_text_files(paths: Iterable[str | Path]) -> Iterator[str]:
    """Text of files for tokenizer training: plain text in ~1 MB pieces cut at line ends,
    or the "text" field of each line of .jsonl / .jsonl.gz. Directories are read recursively."""
    for path in map(Path, paths):
        if path.is_dir():
            yield from iter_text_files(sorted(p for p in path.rglob("*") if p.is_file()))
            continue
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            yield from _iter_jsonl_text(path)
            continue
        try:
            with open(path, encoding="utf-8", newline="") as f:
                while chunk := f.read(_CHUNK_CHARS):
                    yield chunk + f.readline()
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None


def _iter_jsonl_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{path}:{lineno}: not a JSON object with a 'text' field") from None
            if not isinstance(text, str):
                raise InputError(f"{path}:{lineno}: 'text' is not a string")
            yield text


__all__ = [
    "SPECIAL_TOKENS",
    "SPLIT_PATTERN",
    "BPETokenizer",
    "TiktokenTokenizer",
    "Tokenizer",
    "iter_text_files",
    "load_tokenizer",
    "train_bpe",
]
