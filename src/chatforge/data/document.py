"""The unit of the data stage: one document with where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A document from any source. `id` is unique and stable for the same input."""

    id: str
    source: str  # warc | wet | wiki | books | code | papers | html | jsonl | parquet | text | hf | builtin
    text: str
    url: str = ""  # URL for web pages, path for files
    metadata: dict[str, Any] = field(default_factory=dict)
