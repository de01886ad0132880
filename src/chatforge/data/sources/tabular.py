"""Record files: JSONL, JSON lists, Parquet and plain text, with a configurable text field.

Compressed inputs (.gz, .bz2, .zst where `zstandard` is installed) are read as streams.
A JSON list is decoded one element at a time (never the whole array), Parquet in record
batches. Fields other than the text are kept in metadata when they are small scalars, with
one level of nesting flattened ("metadata.language"); a "language" field becomes the
`language_hint` the cleaning steps may compare against their own language ID; a "messages"
list (a conversation) is kept as it is, for pre-training in the chat template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from chatforge.data.document import Document
from chatforge.data.sources.base import (
    COMPRESSION_ERRORS,
    DEFAULT_MAX_BYTES,
    Source,
    decode_utf8,
    doc_id,
    find_files,
    iter_lines,
    open_binary,
    read_capped,
    strip_compression_suffix,
    truncation_reason,
)
from chatforge.errors import InputError

_COMPRESSED = ("", ".gz", ".bz2", ".zst", ".zstd")
SUFFIXES = {
    "jsonl": tuple(s + c for s in (".jsonl", ".ndjson", ".json") for c in _COMPRESSED),
    "parquet": (".parquet",),
    "text": tuple(s + c for s in (".txt", ".text", ".md") for c in _COMPRESSED),
}
TEXT_SPLITS = ("file", "paragraph", "line")
_MAX_META_CHARS = 512


def _metadata(record: dict[str, Any], field: str) -> dict[str, Any]:
    """Small scalar fields of a record (nested dicts flattened once), without the text."""
    meta: dict[str, Any] = {}
    for key, value in record.items():
        if key == field:
            continue
        if key == "messages" and isinstance(value, list):
            meta[key] = value
            continue
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if (
                v is None
                or isinstance(v, bool | int | float)
                or (isinstance(v, str) and len(v) <= _MAX_META_CHARS)
            ):
                meta[f"{key}.{sub}" if sub is not None else key] = v
    for key in ("language", "metadata.language", "lang"):
        if isinstance(meta.get(key), str):
            meta["language_hint"] = meta[key]
            break
    return meta


class _ElementTooLarge(ValueError):
    """A JSON-list element longer than the reader's byte cap."""


class _ArrayTruncated(ValueError):
    """The stream ended before the JSON list's closing bracket."""


class _JsonArrayReader:
    """Elements of a top-level JSON array, decoded one by one from a byte stream."""

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        self.stream, self.max_bytes = stream, max_bytes
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.raw = b""  # undecoded tail of a multi-byte character cut by a chunk boundary

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(1 << 16)
        if not chunk:
            self.eof = True
            return False
        data = self.raw + chunk
        for cut in range(0, 4):  # keep an incomplete UTF-8 sequence for the next chunk
            try:
                text = data[: len(data) - cut].decode("utf-8")
                self.raw = data[len(data) - cut :]
                break
            except UnicodeDecodeError:
                continue
        else:
            raise UnicodeDecodeError("utf-8", data, 0, len(data), "invalid UTF-8 in JSON")
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def _skip(self, chars: str) -> str:
        """Skip whitespace and the given separators; return the next character ('' at end)."""
        while True:
            while self.pos < len(self.buf) and (
                self.buf[self.pos].isspace() or self.buf[self.pos] in chars
            ):
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self._skip("\ufeff") != "[":
            raise ValueError("not a JSON array")
        self.pos += 1
        index = 0
        while True:
            char = self._skip(",")
            if char == "]":
                return
            if char == "":
                raise _ArrayTruncated
            while True:
                try:
                    value, end = self.decoder.raw_decode(self.buf, self.pos)
                    break
                except json.JSONDecodeError:
                    # Incomplete element: read more, unless it is already past the cap.
                    if len(self.buf) - self.pos > self.max_bytes:
                        raise _ElementTooLarge from None
                    if not self._fill():
                        raise
            self.pos = end
            yield index, value
            index += 1


class TabularSource(Source):
    """JSONL / JSON-list / Parquet / plain-text files; `field` names the text column."""

    def __init__(
        self,
        path: str,
        *,
        kind: str = "jsonl",
        field: str = "text",
        split: str = "file",
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(path, max_bytes=max_bytes)
        if kind not in SUFFIXES:
            raise InputError(
                f"unknown record format '{kind}' (choose one of {', '.join(SUFFIXES)})"
            )
        if kind == "text" and split not in TEXT_SPLITS:
            raise InputError(
                f"source 'text:{path}': split '{split}' is not one of {', '.join(TEXT_SPLITS)}"
            )
        self.kind, self.field, self.split = kind, field, split
        self.files = find_files(path, kind, SUFFIXES[kind])

    def _iter(self) -> Iterator[Document]:
        read = {"jsonl": self._json_file, "parquet": self._parquet, "text": self._text}[self.kind]
        for path in self.files:
            try:
                yield from read(path)
            except COMPRESSION_ERRORS as error:
                self.skipped[truncation_reason(path, error)] += 1

    def _record(self, path: Path, key: object, record: Any) -> Document | None:
        if not isinstance(record, dict):
            self.skipped["not_an_object"] += 1
            return None
        text = record.get(self.field)
        if not isinstance(text, str):
            self.skipped["missing_field"] += 1
            return None
        if not self._checked(text):
            return None
        meta = _metadata(record, self.field) | {"file": str(path), "record": key}
        url = meta.get("url") or meta.get("metadata.url")
        url = url if isinstance(url, str) and url else f"{path}#{key}"
        return Document(doc_id(self.kind, path.resolve(), key), self.kind, text, url, meta)

    def _json_file(self, path: Path) -> Iterator[Document]:
        with open_binary(path) as stream:
            head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
            if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
                yield from self._json_array(path, stream)
                return
            for offset, line in iter_lines(stream, self.max_bytes):
                if line is None:
                    self.skipped["too_large"] += 1
                    continue
                if not line.strip():
                    continue
                raw = decode_utf8(line)
                if raw is None:
                    self.skipped["invalid_utf8"] += 1
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    self.skipped["bad_json"] += 1
                    continue
                doc = self._record(path, offset, record)
                if doc is not None:
                    yield doc

    def _json_array(self, path: Path, stream: IO[bytes]) -> Iterator[Document]:
        try:
            for index, record in _JsonArrayReader(stream, self.max_bytes):
                doc = self._record(path, index, record)
                if doc is not None:
                    yield doc
        # After any of these the rest of the array cannot be framed: the file ends here.
        except UnicodeDecodeError:
            self.skipped["invalid_utf8"] += 1
        except _ElementTooLarge:
            self.skipped["too_large"] += 1
        except _ArrayTruncated:
            self.skipped["truncated"] += 1
        except ValueError:
            self.skipped["bad_json"] += 1

    def _parquet(self, path: Path) -> Iterator[Document]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
            self.skipped["bad_parquet"] += 1
            return
        if self.field not in parquet.schema_arrow.names:
            raise InputError(
                f"{path}: no column '{self.field}' (columns: {', '.join(parquet.schema_arrow.names)})"
            )
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=1024):
                for record in self._batch_rows(batch):
                    doc = None if record is None else self._record(path, row, record)
                    row += 1
                    if doc is not None:
                        yield doc
        except Exception:  # noqa: BLE001 - a corrupt page ends the file, not the run
            self.skipped["bad_parquet"] += 1

    def _batch_rows(self, batch: Any) -> list[dict[str, Any] | None]:
        """Rows of a record batch; a row whose strings are not UTF-8 (writers do not all
        check) is None and counted, instead of costing its whole batch."""
        try:
            return batch.to_pylist()
        except UnicodeDecodeError:
            rows: list[dict[str, Any] | None] = []
            for i in range(batch.num_rows):
                try:
                    rows.append(batch.slice(i, 1).to_pylist()[0])
                except UnicodeDecodeError:
                    self.skipped["invalid_utf8"] += 1
                    rows.append(None)
            return rows

    def _text(self, path: Path) -> Iterator[Document]:
        base = strip_compression_suffix(path.name)
        meta = {"file": str(path), "name": base}
        with open_binary(path) as stream:
            if self.split == "line":
                for offset, line in iter_lines(stream, self.max_bytes):
                    doc = self._text_doc(path, offset, line, meta)
                    if doc is not None:
                        yield doc
                return
            if self.split == "file":
                doc = self._text_doc(path, 0, read_capped(stream, self.max_bytes), meta)
                if doc is not None:
                    yield doc
                return
            yield from self._paragraphs(path, stream, meta)

    def _paragraphs(
        self, path: Path, stream: IO[bytes], meta: dict[str, Any]
    ) -> Iterator[Document]:
        """Blank-line separated blocks, read line by line."""
        block: list[bytes] = []
        start = 0
        for offset, line in iter_lines(stream, self.max_bytes):
            if line is not None and line.strip():
                if not block:
                    start = offset
                block.append(line)
                continue
            if line is None:
                self.skipped["too_large"] += 1
            if block:
                doc = self._text_doc(path, start, b"".join(block), meta)
                block = []
                if doc is not None:
                    yield doc
        if block:
            doc = self._text_doc(path, start, b"".join(block), meta)
            if doc is not None:
                yield doc

    def _text_doc(
        self, path: Path, offset: int, data: bytes | None, meta: dict[str, Any]
    ) -> Document | None:
        if data is None:
            self.skipped["too_large"] += 1
            return None
        text = decode_utf8(data)
        if text is None:
            self.skipped["invalid_utf8"] += 1
            return None
        text = text.strip()
        if self.split == "line" and not text:
            return None  # blank lines separate records in line mode; they are not records
        if not self._checked(text):
            return None
        return Document(
            doc_id(self.kind, path.resolve(), offset),
            self.kind,
            text,
            f"{path}#{offset}",
            meta | {"offset": offset},
        )
