"""Hugging Face datasets by name, streamed (`datasets` is the optional `hf` extra).

`NAME` is a Hub dataset id, or a local file or folder that `datasets` reads with its own
packaged loaders (json, csv, parquet, text), which is how it is tested offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatforge.data.document import Document
from chatforge.data.sources.base import DEFAULT_MAX_BYTES, Source, doc_id, strip_compression_suffix
from chatforge.errors import InputError

_LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def _load_args(name: str) -> tuple[str, dict[str, Any]]:
    """(builder, kwargs) for load_dataset: a packaged loader for local files, else the Hub id."""
    path = Path(name).expanduser()
    if path.is_file():
        suffix = Path(strip_compression_suffix(path.name)).suffix.lower()
        if suffix not in _LOADERS:
            raise InputError(f"source 'hf:{name}': no datasets loader for '{suffix}' files")
        return _LOADERS[suffix], {"data_files": str(path)}
    return name, {}


class HfSource(Source):
    """Rows of a (streamed) Hugging Face dataset split; `field` names the text column."""

    kind = "hf"

    def __init__(
        self,
        name: str,
        *,
        field: str = "text",
        split: str = "train",
        config: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(name, max_bytes=max_bytes)
        self.field, self.split, self.config = field, split, config

    def _iter(self) -> Iterator[Document]:
        try:
            import datasets
        except ImportError:
            raise InputError(
                f"source 'hf:{self.path}' needs the 'datasets' package: pip install 'chatforge[hf]'"
            ) from None
        builder, kwargs = _load_args(self.path)
        if self.config:
            kwargs["name"] = self.config
        try:
            rows = datasets.load_dataset(builder, split=self.split, streaming=True, **kwargs)
        except Exception as e:  # noqa: BLE001 - Hub, network and builder errors: one line for the user
            raise InputError(
                f"source 'hf:{self.path}': cannot open dataset ({type(e).__name__}: {e})".splitlines()[
                    0
                ]
            ) from e
        for index, row in enumerate(rows):
            text = row.get(self.field)
            if not isinstance(text, str):
                self.skipped["missing_field"] += 1
                continue
            if not self._checked(text):
                continue
            meta = {
                k: v
                for k, v in row.items()
                if k != self.field and (v is None or isinstance(v, str | int | float | bool))
            }
            meta |= {"dataset": self.path, "split": self.split, "row": index}
            url = meta.get("url") if isinstance(meta.get("url"), str) else f"hf:{self.path}#{index}"
            yield Document(
                doc_id(self.kind, self.path, self.config or "", self.split, index),
                self.kind,
                text,
                url,
                meta,
            )
