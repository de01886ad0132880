"""What every source shares: the streaming `Source` base, path expansion, decompression, ids.

Policy for bad input, the same in every reader: a record that cannot be read is skipped and
counted in `Source.skipped` under a short reason, and the reader goes on with the next record
(or stops cleanly at a truncated end of stream). Text that is not valid UTF-8 (or not valid in
the encoding a page declares) is *skipped* as "invalid_utf8", not decoded with replacement
characters: mis-decoded text is the mark of a wrong encoding (mojibake), and replacement
characters scattered through a document would survive every later filter into the tokenizer.
For the same reason a record whose text, URL or metadata holds a lone UTF-16 surrogate (the
JSON escape "\\ud800" decodes to one) is skipped as "lone_surrogate": no UTF-8 writer can
encode it, so it would otherwise crash the byte counts and the Parquet shards downstream.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from chatforge.data.document import Document
from chatforge.errors import InputError

# A document larger than this is skipped as "too_large": it is almost always a dump, a log or a
# data file, and one such record must not take a worker's memory. Readers take `max_bytes`.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

# The exceptions a truncated or corrupt compressed stream raises while it is read.
COMPRESSION_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error)


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    """True if `text` holds a lone surrogate, which cannot be encoded as UTF-8."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def _doc_has_surrogate(doc: Document) -> bool:
    return (
        has_surrogate(doc.text)
        or has_surrogate(doc.url)
        or any(isinstance(v, str) and has_surrogate(v) for v in doc.metadata.values())
    )


def doc_id(*parts: object) -> str:
    """A stable id: sha1 of the parts that locate a record (source kind, file, offset or key)."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def expand_paths(pattern: str, kind: str) -> list[Path]:
    """Files matching a path or glob (sorted, so the order and the ids are deterministic)."""
    matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    if not matches:
        raise InputError(f"source '{kind}:{pattern}': no file or directory matches {pattern}")
    return [Path(m) for m in matches]


def walk_files(roots: Iterable[Path], suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under each root (a file is yielded as is) whose name ends with one of `suffixes`."""
    for root in roots:
        if root.is_file():
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()  # deterministic order, and os.walk honours the in-place sort
            for name in sorted(filenames):
                if name.lower().endswith(suffixes):
                    yield Path(dirpath) / name


def find_files(pattern: str, kind: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The files a source reads: matches of `pattern`, directories walked for `suffixes`."""
    files = list(walk_files(expand_paths(pattern, kind), suffixes))
    if not files:
        raise InputError(
            f"source '{kind}:{pattern}': no {'/'.join(sorted(set(suffixes)))} files there"
        )
    return files


def compression_of(path: Path) -> str:
    """'gz', 'bz2', 'zst' or '' from the file name."""
    name = path.name.lower()
    for suffix, kind in ((".gz", "gz"), (".bz2", "bz2"), (".zst", "zst"), (".zstd", "zst")):
        if name.endswith(suffix):
            return kind
    return ""


def strip_compression_suffix(name: str) -> str:
    """'a.jsonl.gz' -> 'a.jsonl'."""
    for suffix in (".gz", ".bz2", ".zstd", ".zst"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for streaming reads, decompressing gzip/bzip2 (and zstd if installed)."""
    kind = compression_of(path)
    if kind == "gz":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "zst":
        try:
            import zstandard
        except ImportError as e:
            raise InputError(
                f"{path}: reading .zst needs the 'zstandard' package (pip install zstandard)"
            ) from e
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
    return open(path, "rb")


_GZIP_MAGIC = b"\x1f\x8b\x08"
_RAW_CHUNK = 1 << 16


class GzipMembers(io.RawIOBase):
    """A multi-member gzip stream that survives a corrupt member, for WARC-like files.

    gzip.open stops at the first damaged member, losing every intact member after it;
    WARC writers compress each record as its own member precisely so that a reader can
    resynchronise. Here a damaged member is counted once in `skipped` ("corrupt_gzip"), the
    raw bytes are scanned for the next gzip header, and decompression restarts there. The
    decompressed span of each damaged member is kept in `damage` (a record overlapping one is
    not whole), and the output gets a blank line after it so a record framer sees a boundary.
    A stream that ends inside a member counts "truncated_gzip" and is damaged at its end.
    """

    def __init__(self, raw: IO[bytes], skipped: Counter[str]) -> None:
        super().__init__()
        self.raw, self.skipped = raw, skipped
        self.damage: list[tuple[int, int]] = []  # decompressed (first, last) offsets
        self.produced = 0  # decompressed bytes handed out so far
        self.buf = b""  # raw bytes not yet fed to the decompressor
        self.out = b""  # decompressed bytes not yet handed out
        self.done = False
        self._new_member()

    def readable(self) -> bool:
        return True

    def _more_raw(self) -> bool:
        chunk = self.raw.read(_RAW_CHUNK)
        self.buf += chunk
        return bool(chunk)

    def _mark_damage(self, reason: str) -> None:
        self.skipped[reason] += 1
        self.damage.append((self.member_start, self.produced + len(self.out)))
        self.out += b"\r\n\r\n"

    def _resync(self) -> None:
        """Drop raw bytes up to the next plausible gzip header (magic, reserved flags clear)."""
        start = 1  # the damaged member ends after this chunk's first byte
        while True:
            at = self.buf.find(_GZIP_MAGIC, start)
            if at < 0 or at + 4 > len(self.buf):
                # Keep what may be the first bytes of a header, and read on.
                self.buf = self.buf[at if at >= 0 else max(start, len(self.buf) - 3) :]
                start = 0
                if not self._more_raw():
                    self.buf, self.done = b"", True
                    return
                continue
            if self.buf[at + 3] & 0xE0 == 0:
                self.buf = self.buf[at:]
                self._new_member()
                return
            start = at + 1

    def _new_member(self) -> None:
        self.inflate, self.in_member = zlib.decompressobj(31), False
        self.member_start = self.produced + len(self.out)

    def _step(self) -> None:
        """Decompress some more into `out`, resynchronising after a damaged member."""
        if not self.buf and not self._more_raw():
            if self.in_member:
                try:  # output held back by the bounded reads, up to the member's end
                    self.out += self.inflate.flush()
                except zlib.error:
                    pass
                if self.inflate.eof:
                    self.buf = self.inflate.unused_data
                    self._new_member()
                    return
                self._mark_damage("truncated_gzip")
            self.done = True
            return
        data, self.buf = self.buf, b""
        if not self.in_member:
            data = data.lstrip(b"\x00")  # zero padding between members is allowed
            if not data:
                return
        try:
            # Bounded output: memory stays at a chunk, whatever the compression ratio.
            self.out += self.inflate.decompress(data, _RAW_CHUNK)
        except zlib.error:
            self._mark_damage("corrupt_gzip")
            self.buf = data  # the next member starts somewhere after this chunk's first byte
            self._resync()
            return
        self.in_member = True
        if self.inflate.eof:
            self.buf = self.inflate.unused_data
            self._new_member()
        else:
            self.buf = self.inflate.unconsumed_tail

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.out and not self.done:
            self._step()
        n = min(len(target), len(self.out))
        target[:n] = self.out[:n]
        self.out = self.out[n:]
        self.produced += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def truncation_reason(path: Path, error: BaseException | None = None) -> str:
    """Skip reason for a broken stream: 'truncated_gzip' if it ended early (EOFError),
    'corrupt_gzip' if its bytes are damaged; likewise bz2 and zst, or plain 'truncated'."""
    kind = {"gz": "gzip"}.get(compression_of(path), compression_of(path))
    state = "corrupt" if error is not None and not isinstance(error, EOFError) else "truncated"
    return f"{state}_{kind}" if kind else state


def decode_utf8(data: bytes) -> str | None:
    """UTF-8 (a leading BOM dropped), or None when the bytes are not valid UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def read_capped(stream: IO[bytes], max_bytes: int) -> bytes | None:
    """Read a whole (decompressed) stream, or None as soon as it passes `max_bytes`."""
    data = stream.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def iter_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(byte offset, line) for each line; a line over `max_bytes` comes as None, unread."""
    offset = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        start = offset
        offset += len(line)
        if len(line) > max_bytes and not line.endswith(b"\n"):
            # Drain the rest of the gigantic line in bounded pieces instead of holding it.
            while True:
                rest = stream.readline(1 << 20)
                offset += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield start, None
            continue
        yield start, line


class Source:
    """A streaming reader of documents. Subclasses implement `_iter`.

    `kind` is the spec prefix ("warc", "wiki", ...), `path` the pattern it was opened with,
    `skipped` counts records that could not become documents, by reason.
    """

    kind = ""

    def __init__(self, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.skipped: Counter[str] = Counter()

    def iter_documents(self) -> Iterator[Document]:
        """Stream the documents; bad records are skipped and counted, never raised."""
        for doc in self._iter():
            if _doc_has_surrogate(doc):
                self.skipped["lone_surrogate"] += 1
                continue
            yield doc

    def __iter__(self) -> Iterator[Document]:
        return self.iter_documents()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind}:{self.path})"

    def _iter(self) -> Iterator[Document]:
        raise NotImplementedError

    def _checked(self, text: str) -> bool:
        """Count and reject empty text or text over `max_bytes` characters; True if it may pass."""
        if not text.strip():
            self.skipped["empty"] += 1
            return False
        if len(text) > self.max_bytes:
            self.skipped["too_large"] += 1
            return False
        return True
