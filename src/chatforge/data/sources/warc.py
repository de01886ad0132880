"""Web crawls: WARC response records (HTML -> main text), WET conversion records, WAT metadata.

Records are framed here rather than by warcio's iterator so that one record with a broken
header costs that record only: the reader counts it as "bad_warc_header" and resynchronises
on the next line that starts a WARC record. Each well-framed record is then handed to warcio,
which parses the HTTP envelope and undoes chunked transfer and gzip/deflate content encoding.
A .warc.gz is read member by member (`GzipMembers`): a corrupt member costs the records it
holds ("corrupt_gzip", once), and reading resumes at the next intact member; a truncated
file ends with "truncated_gzip" after the last whole record.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from chatforge.data.document import Document
from chatforge.data.extract import UnparseablePage, charset_of, extract_page
from chatforge.data.sources.base import (
    COMPRESSION_ERRORS,
    DEFAULT_MAX_BYTES,
    GzipMembers,
    Source,
    compression_of,
    decode_utf8,
    doc_id,
    find_files,
    open_binary,
    truncation_reason,
)

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".wat", ".wat.gz", ".warc.wet.txt")
_MAX_HEADER_BYTES = 64 * 1024
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class _Record:
    """One framed WARC record: header block, parsed header fields and the raw block bytes."""

    __slots__ = ("offset", "header", "fields", "block")

    def __init__(self, offset: int, header: bytes, fields: dict[str, str], block: bytes) -> None:
        self.offset, self.header, self.fields, self.block = offset, header, fields, block


class _Framer:
    """Splits a decompressed WARC stream into records, counting and skipping broken ones.

    Content-Length frames a record, but is checked against the stream: hand-made and
    re-encoded WARCs (cc_net's WET sample among them) carry lengths in characters, or stale
    ones. A block that swallows the start of the next record is cut there, and one that stops
    short is extended to the next record start, so a wrong length costs neither record.
    """

    def __init__(
        self,
        stream: IO[bytes],
        skipped: Counter[str],
        max_bytes: int,
        truncated: str,
        damage: list[tuple[int, int]] | None = None,
    ) -> None:
        self.stream, self.skipped, self.max_bytes = stream, skipped, max_bytes
        self.truncated = truncated  # skip reason when the stream ends inside a record
        # Spans of the stream known to be damaged (already counted by the decompressor):
        # a record overlapping one is dropped without a second count.
        self.damage = damage if damage is not None else []
        self.offset = 0  # offset in the decompressed stream of the next unread byte
        self.pending = b""  # bytes read ahead and pushed back

    def _readline(self) -> bytes:
        if self.pending:
            line, sep, rest = self.pending.partition(b"\n")
            if sep:
                self.pending = rest
                self.offset += len(line) + 1
                return line + sep
            self.pending = b""
            line += self.stream.readline(_MAX_HEADER_BYTES)
        else:
            line = self.stream.readline(_MAX_HEADER_BYTES)
        self.offset += len(line)
        return line

    def _read(self, n: int) -> bytes:
        head, self.pending = self.pending[:n], self.pending[n:]
        data = head + self.stream.read(n - len(head)) if len(head) < n else head
        self.offset += len(data)
        return data

    def _push_back(self, data: bytes) -> None:
        self.pending = data + self.pending
        self.offset -= len(data)

    def _discard(self, n: int) -> int:
        read = 0
        while read < n:
            chunk = self._read(min(1 << 20, n - read))
            if not chunk:
                break
            read += len(chunk)
        return read

    def __iter__(self) -> Iterator[_Record]:
        resyncing = False
        while True:
            start = self.offset
            line = self._readline()
            if not line:
                return
            if not line.strip():
                continue
            if not line.startswith(b"WARC/"):
                if not resyncing:  # one count per broken record, not per line scanned past
                    self.skipped["bad_warc_header"] += 1
                    resyncing = True
                continue
            resyncing = False
            header, fields = self._header(line)
            length = _content_length(fields)
            if fields is None or length is None:
                self.skipped["bad_warc_header"] += 1
                resyncing = True
                continue
            if length > self.max_bytes:
                self.skipped["too_large"] += 1
                if self._discard(length) < length:
                    self._count_truncated(start)
                    return
                continue
            block = self._read(length)
            if len(block) < length:
                self._count_truncated(start)
                return
            block = self._true_block(block)
            if not self._damaged(start, start + len(header) + len(block)):
                yield _Record(start, header, fields, block)

    def _damaged(self, first: int, last: int) -> bool:
        return any(lo <= last and first <= hi for lo, hi in self.damage)

    def _count_truncated(self, start: int) -> None:
        if not self._damaged(start, self.offset):
            self.skipped[self.truncated] += 1

    def _true_block(self, block: bytes) -> bytes:
        """The block as the stream delimits it, pushing back any bytes of the next record."""
        # Two lines of look-ahead catch a next record whose version line the block ate.
        window = block + self._readline() + self._readline()
        # A substring test first: the regex scan of every block cost ~15% of the reader.
        inside = _NEXT_RECORD.search(window) if b"WARC/1." in window else None
        if inside and inside.start("gap") < len(block) - 1:
            self._push_back(window[inside.end("gap") :])
            return block[: inside.start("gap")]
        # A block followed by the record terminator had a true length: whatever comes before
        # the next record is junk, not the rest of the block.
        exact = window[len(block) : len(block) + 4] == b"\r\n\r\n"
        self._push_back(window[len(block) :])
        extra: list[bytes] = []
        size, garbage = 0, False
        while True:
            line = self._readline()
            if not line or line.startswith(b"WARC/"):
                self._push_back(line)
                break
            size += len(line)
            # A header line, or more than a document's worth of bytes, is not the tail of this
            # block: it is a record whose version line is broken, or junk. Skipped, not kept.
            garbage = (
                garbage
                or size > self.max_bytes
                or bool(_HEADER_FIELD.match(line))
                or (exact and bool(line.strip()))
            )
            if not garbage:
                extra.append(line)
        if garbage:
            self.skipped["bad_warc_header"] += 1
            return block
        return block + b"".join(extra).rstrip(b"\r\n")

    def _header(self, first: bytes) -> tuple[bytes, dict[str, str] | None]:
        lines = [first]
        fields: dict[str, str] | None = {}
        size = len(first)
        while True:
            line = self._readline()
            size += len(line)
            if not line or size > _MAX_HEADER_BYTES:
                return b"".join(lines), None
            lines.append(line)
            if not line.strip():
                return b"".join(lines), fields
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            damaged = _CONTROL.search(line.rstrip(b"\r\n")) is not None
            if not sep or not name.strip() or damaged or fields is None:
                fields = None  # keep reading to the blank line so the block is skipped whole
                continue
            fields[name.strip().lower()] = value.strip()


# A record start inside a block: a blank line, then a WARC version line and a WARC- field.
_NEXT_RECORD = re.compile(rb"(?P<gap>\r?\n\r?\n)WARC/1\.[01]\r?\nWARC-")
# No header line holds a control character (tab aside): one there is damage, not a value.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEADER_FIELD = re.compile(rb"(WARC-[A-Za-z-]+|Content-Length|Content-Type): ")


def _content_length(fields: dict[str, str] | None) -> int | None:
    if fields is None:
        return None
    try:
        length = int(fields.get("content-length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _iter_records(path: Path, skipped: Counter[str], max_bytes: int) -> Iterator[_Record]:
    """Framed records of one file; gzip resynchronises on its next member, while a truncated
    or corrupt bzip2/zstd stream ends the file."""
    if compression_of(path) == "gz":
        with open(path, "rb") as raw:
            members = GzipMembers(raw, skipped)
            stream = io.BufferedReader(members, buffer_size=1 << 16)
            yield from _Framer(stream, skipped, max_bytes, "truncated_gzip", members.damage)
        return
    with open_binary(path) as stream:
        try:
            yield from _Framer(stream, skipped, max_bytes, truncation_reason(path))
        except COMPRESSION_ERRORS as error:
            skipped[truncation_reason(path, error)] += 1


def _record_doc_id(kind: str, path: Path, record: _Record) -> str:
    """Id from the record's own identity (id, URI, date): stable wherever the file lies.

    The URI and date join the record id because hand-made WARCs reuse record ids.
    """
    f = record.fields
    if "warc-record-id" not in f:
        return doc_id(kind, path.resolve(), record.offset)
    return doc_id(kind, f["warc-record-id"], f.get("warc-target-uri", ""), f.get("warc-date", ""))


def _target_uri(record: _Record) -> str:
    # Wget writes the WARC/1.0 draft's "<uri>" form; strip the angle brackets.
    return record.fields.get("warc-target-uri", "").strip("<>")


def _warc_fields(record: _Record) -> dict[str, Any]:
    f = record.fields
    meta = {
        "warc_type": f.get("warc-type", ""),
        "warc_date": f.get("warc-date", ""),
        "warc_record_id": f.get("warc-record-id", ""),
    }
    if "warc-identified-content-language" in f:
        meta["language_hint"] = f["warc-identified-content-language"]
    if "warc-refers-to" in f:
        meta["warc_refers_to"] = f["warc-refers-to"]
    return meta


# The record types of the WARC 1.1 standard; any other value is a damaged header.
WARC_TYPES = frozenset({"warcinfo", "response", "resource", "request", "metadata", "revisit",
                        "conversion", "continuation"})


class WarcSource(Source):
    """Documents from WARC response records (HTML extracted) and WET conversion records."""

    kind = "warc"

    def __init__(
        self,
        path: str,
        *,
        extractor: str = "resiliparse",
        max_bytes: int = DEFAULT_MAX_BYTES,
        kind: str = "warc",
    ) -> None:
        super().__init__(path, max_bytes=max_bytes)
        self.kind = kind
        self.extractor = extractor
        self.files = find_files(path, kind, WARC_SUFFIXES)
        # Records that are not documents (warcinfo, request, revisit, metadata...), for reports.
        self.record_types: Counter[str] = Counter()

    def _iter(self) -> Iterator[Document]:
        for path in self.files:
            for record in _iter_records(path, self.skipped, self.max_bytes):
                warc_type = record.fields.get("warc-type", "")
                if not warc_type:  # mandatory in every record: its header is damaged
                    self.skipped["bad_warc_header"] += 1
                    continue
                if warc_type not in WARC_TYPES:  # "con version": damage, not a record to pass over
                    self.skipped["unknown_warc_type"] += 1
                    continue
                if warc_type == "response":
                    doc = self._response(path, record)
                elif warc_type == "conversion":
                    doc = self._conversion(path, record)
                else:
                    self.record_types[warc_type] += 1
                    continue
                if doc is not None:
                    yield doc

    def _id(self, path: Path, record: _Record) -> str:
        return _record_doc_id(self.kind, path, record)

    def _response(self, path: Path, record: _Record) -> Document | None:
        from warcio.recordloader import ArcWarcRecordLoader

        try:
            # The loader, not ArchiveIterator: a half-consumed iterator per record is cyclic
            # garbage that holds the record's bytes until the next GC pass.
            parsed = ArcWarcRecordLoader().parse_record_stream(
                io.BytesIO(record.header + record.block), known_format="warc"
            )
            http = parsed.http_headers
            body = parsed.content_stream().read()
        except Exception:  # noqa: BLE001 - warcio raises many types on a malformed envelope
            self.skipped["bad_http"] += 1
            return None
        if http is None:
            self.record_types["response_without_http"] += 1
            return None
        status = http.get_statuscode()
        if status != "200":
            self.skipped["http_status"] += 1
            return None
        content_type = (http.get_header("Content-Type") or "").lower()
        if not _looks_html(content_type, body):
            self.skipped["non_html"] += 1
            return None
        try:
            page = extract_page(body, self.extractor, charset_of(content_type))
        except UnparseablePage:
            self.skipped["unparseable_html"] += 1
            return None
        if not self._checked(page.text):
            return None
        meta = _warc_fields(record) | {
            "content_type": content_type.split(";")[0].strip(),
            "http_status": int(status),
            "title": page.title,
            "file": str(path),
            "offset": record.offset,
        }
        if page.lang:
            meta["language_hint"] = page.lang
        return Document(self._id(path, record), self.kind, page.text, _target_uri(record), meta)

    def _conversion(self, path: Path, record: _Record) -> Document | None:
        text = decode_utf8(record.block)
        if text is None:
            self.skipped["invalid_utf8"] += 1
            return None
        text = text.strip()
        if not self._checked(text):
            return None
        meta = _warc_fields(record) | {
            "content_type": record.fields.get("content-type", ""),
            "file": str(path),
            "offset": record.offset,
        }
        return Document(self._id(path, record), self.kind, text, _target_uri(record), meta)


def _looks_html(content_type: str, body: bytes) -> bool:
    if content_type:
        return content_type.startswith(_HTML_TYPES)
    head = body[:1024].lstrip().lower()  # no declared type: sniff the first bytes
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


class WatSource(Source):
    """Documents from WAT metadata records: the page title and meta description as text.

    A WAT holds no body text; what it does hold (title, description, outlinks, HTTP status)
    is kept so that URL- and link-based filters can run without the WARC. Request and
    other non-response metadata records are counted in `record_types`, not as skipped.
    """

    kind = "wat"

    def __init__(self, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(path, max_bytes=max_bytes)
        self.files = find_files(path, self.kind, WARC_SUFFIXES)
        self.record_types: Counter[str] = Counter()

    def _iter(self) -> Iterator[Document]:
        for path in self.files:
            for record in _iter_records(path, self.skipped, self.max_bytes):
                if "warc-type" not in record.fields:  # mandatory: its header is damaged
                    self.skipped["bad_warc_header"] += 1
                    continue
                if record.fields.get("warc-type") != "metadata" or "json" not in record.fields.get(
                    "content-type", ""
                ):
                    self.record_types[record.fields.get("warc-type", "unknown")] += 1
                    continue
                doc = self._metadata(path, record)
                if doc is not None:
                    yield doc

    def _metadata(self, path: Path, record: _Record) -> Document | None:
        try:
            envelope = json.loads(record.block)["Envelope"]
        except (ValueError, KeyError, TypeError):
            self.skipped["bad_json"] += 1
            return None
        payload = envelope.get("Payload-Metadata", {})
        response = payload.get("HTTP-Response-Metadata")
        if response is None:
            self.record_types[payload.get("Actual-Content-Type", "non_response")] += 1
            return None
        head = response.get("HTML-Metadata", {}).get("Head", {})
        title = " ".join(str(head.get("Title", "")).split())
        description = next(
            (
                m.get("content", "")
                for m in head.get("Metas", [])
                if str(m.get("name", "")).lower() in ("description", "og:description")
            ),
            "",
        )
        text = "\n".join(t for t in (title, " ".join(str(description).split())) if t)
        if not self._checked(text):
            return None
        warc_meta = envelope.get("WARC-Header-Metadata", {})
        url = warc_meta.get("WARC-Target-URI") or _target_uri(record)
        meta = _warc_fields(record) | {
            "title": title,
            "http_status": response.get("Response-Message", {}).get("Status", ""),
            "links": len(response.get("HTML-Metadata", {}).get("Links", [])),
            "file": str(path),
            "offset": record.offset,
        }
        return Document(_record_doc_id(self.kind, path, record), self.kind, text, url, meta)
