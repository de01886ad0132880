"""The pre-training corpus named by `pretrain.inputs` (and `chatforge pretrain --data`).

An input spec is one of:
- `KIND:PATH[:FIELD]` with KIND parquet, jsonl, json, text or hf: the data stage's own source
  syntax (`chatforge.data.sources.parse_spec`); `hf:NAME[:FIELD]` streams a Hugging Face
  dataset by name, or reads a local file with the `datasets` packaged loaders;
- a bare path or glob whose name tells its format: `*.parquet` (or a directory of them),
  `*.jsonl` / `*.ndjson` / `*.json` (compressed too), `*.txt` / `*.text` / `*.md`, read as one
  document per blank-line separated paragraph (`text:PATH:file` reads a file as one
  document: a single document cannot be split into train and validation);
- a directory holding `index.json`: chatforge token shards (`tokenizer.shards`), used in
  place. It must be the only input, and `pretrain.tokenizer` must name the tokenizer that
  wrote it; the tokens stage checks that it does.

A JSONL/JSON record may carry `messages` (a conversation in the chat template's form,
`tokenizer.chat.check_messages`): the shards encode it in the chat template
(`tokenizer.shards`). Records that cannot be read, or whose `messages` are not such a
conversation, are skipped and counted by reason (the readers' policy); a missing path is one
`InputError`. `pretrain.max_chars` stops the read after that many characters, so the tokenizer and the shards of a multi-terabyte stream take its head.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatforge.config import PretrainConfig
from chatforge.data.sources import KINDS, Source, TabularSource, open_source, parse_spec
from chatforge.data.sources.tabular import SUFFIXES
from chatforge.errors import ConfigError, InputError, RunDirError
from chatforge.runs import atomic_write_json, read_json
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import check_messages
from chatforge.tokenizer.shards import SPLITS, TokenShards

# Sources of plain text; the others (warc, wiki, ...) hold raw pages for the data stage to clean.
RECORD_KINDS = ("parquet", "jsonl", "json", "text", "hf")
SHARDS = "shards"
# Documents re-encoded to check that a shard directory was written by the run's tokenizer.
ROUND_TRIP_TOKENS = 1 << 16


@dataclass(frozen=True)
class Inputs:
    """`pretrain.inputs` resolved: reader specs for `open_source`, or one token-shard directory."""

    readers: list[str]
    shards: Path | None
    files: list[Path]  # the local files read, whose bytes key the tokenizer and tokens stages


def reader_spec(spec: str) -> str:
    """The `open_source` spec an input spec stands for, or 'shards:DIR' (see the module doc)."""
    where = f"pretrain.inputs item {spec!r}"
    kind = spec.partition(":")[0].strip().lower()
    if ":" in spec and kind in KINDS:
        if kind not in RECORD_KINDS:
            raise ConfigError(f"{where}: {kind} sources hold raw pages; clean them with `chatforge "
                              "data` and give its documents-*.parquet")
        parse_spec(spec)  # the path must not be empty
        return spec
    path = Path(os.path.expanduser(spec))
    if (path / "index.json").is_file():
        return f"{SHARDS}:{spec}"
    if path.is_dir():
        return f"parquet:{spec}"
    for kind, suffixes in SUFFIXES.items():
        if path.name.lower().endswith(suffixes):
            return f"text:{spec}:paragraph" if kind == "text" else f"{kind}:{spec}"
    if not any(c in spec for c in "*?[") and not path.exists():
        raise InputError(f"{where}: no such file or directory")
    raise ConfigError(f"{where}: its name tells no format; write parquet:, jsonl:, text: or hf: "
                      "before it, or give a token-shard directory (with index.json)")


def _hf_local_file(name: str) -> Path | None:
    """The local file an `hf:` name reads, or None for a Hub dataset id."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    if name.startswith(("/", ".", "~")):
        raise InputError(f"source 'hf:{name}': no such file")
    return None


def resolve(p: PretrainConfig) -> Inputs:
    """Check `pretrain.inputs` before anything runs: ConfigError for a bad spec or combination,
    InputError for a missing path."""
    specs = [reader_spec(s.strip()) for s in p.inputs]
    readers = [s for s in specs if not s.startswith(f"{SHARDS}:")]
    shards = [Path(os.path.expanduser(s.partition(":")[2])) for s in specs if s not in readers]
    if shards and len(specs) > 1:
        raise ConfigError(f"pretrain.inputs: the token-shard directory {shards[0]} must be the only input")
    if shards and not p.tokenizer:
        raise ConfigError(f"pretrain.inputs: the token shards in {shards[0]} need pretrain.tokenizer, "
                          "the tokenizer directory that wrote them")
    files = [path / "index.json" for path in shards]
    for spec in readers:
        kind, name, _ = parse_spec(spec)
        if kind == "hf" and importlib.util.find_spec("datasets") is None:  # fail before the corpus stage
            raise InputError(f"source {spec!r} needs the 'datasets' package: pip install 'chatforge[hf]'")
        if kind != "hf":
            source = open_source(spec)
            files += source.files if isinstance(source, TabularSource) else []
        elif (local := _hf_local_file(name)) is not None:
            files += sorted(f for f in local.rglob("*") if f.is_file()) if local.is_dir() else [local]
        elif not p.max_chars:
            raise ConfigError(f"pretrain.inputs item {spec!r} streams from the Hub: set "
                              "pretrain.max_chars to bound the read, e.g. 4e10")
    if p.tokenizer:
        tok = Path(p.tokenizer).expanduser()
        if not tok.exists():
            raise InputError(f"pretrain.tokenizer: {tok}: no such tokenizer file or directory")
        files += sorted(tok.glob("*")) if tok.is_dir() else [tok]
    return Inputs(readers, shards[0] if shards else None, files)


def _doc(doc: Any) -> dict[str, Any]:
    meta = doc.metadata
    lang = next((meta[k] for k in ("language_hint", "language", "lang") if isinstance(meta.get(k), str)), None)
    source = meta.get("source") if isinstance(meta.get("source"), str) else doc.source
    out = {"text": doc.text, "lang": lang, "source": source}
    if "messages" in meta:
        out["messages"] = meta["messages"]
    return out


def is_conversation(messages: object) -> bool:
    """Whether `messages` is a conversation the chat template renders (`check_messages`)
    with at least one assistant turn to learn from."""
    return (isinstance(messages, list) and check_messages(messages) is None
            and any(m["role"] == "assistant" for m in messages))


class InputDocuments:
    """Documents ({"text", "lang", "source"}) of reader specs in order, at most `max_chars`
    characters of them (0 = all, whole documents); what the readers skipped, by reason."""

    def __init__(self, readers: list[str], max_chars: int = 0) -> None:
        self.readers, self.max_chars = readers, max_chars
        self.sources: list[Source] = []
        self.docs = self.chars = 0
        self.bad_messages = 0

    @property
    def skipped(self) -> Counter[str]:
        bad = Counter({"bad_messages": self.bad_messages}) if self.bad_messages else Counter()
        return sum((s.skipped for s in self.sources), bad)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.sources, self.docs, self.chars, self.bad_messages = [], 0, 0, 0
        for spec in self.readers:
            source = open_source(spec)
            self.sources.append(source)
            for doc in source.iter_documents():
                if self.max_chars and self.chars >= self.max_chars:
                    return
                out = _doc(doc)
                if "messages" in out and not is_conversation(out["messages"]):
                    self.bad_messages += 1
                    continue
                self.docs += 1
                self.chars += len(doc.text)
                yield out


def builtin_readers(run_root: Path) -> list[str]:
    """The run's own documents when `pretrain.inputs` is empty: data stage, then corpus."""
    parquet = sorted((run_root / "data").glob("documents-*.parquet"))
    corpus = run_root / "corpus" / "pretrain.jsonl"
    return [f"parquet:{p}" for p in parquet] + ([f"jsonl:{corpus}"] if corpus.exists() else [])


def link_shards(directory: Path, tok: Tokenizer, tokens_dir: Path) -> dict[str, Any]:
    """Check that `directory`'s shards were written by `tok`, then write tokens_dir/index.json
    pointing at their files in place (no copy); return that index."""
    index_path = directory / "index.json"
    try:
        index = read_json(index_path)
        vocab, bos = index["vocab_size"], index["bos_id"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{index_path}: not a chatforge token-shard index") from None
    if (vocab, bos) != (tok.vocab_size, tok.bos_id):
        raise RunDirError(
            f"{index_path}: shards of a {vocab}-token vocabulary (bos {bos}), but pretrain.tokenizer "
            f"has {tok.vocab_size} tokens (bos {tok.bos_id}); give the tokenizer that wrote them"
        )
    for split in SPLITS:
        _check_round_trip(TokenShards(directory, split), tok)  # also checks the file sizes
    linked = {**index, "splits": {
        s: {**meta, "file": str((directory / meta["file"]).resolve())} for s, meta in index["splits"].items()
    }}
    atomic_write_json(tokens_dir / "index.json", linked)
    return linked


def _check_round_trip(shards: TokenShards, tok: Tokenizer) -> None:
    """The documents in the split's first ROUND_TRIP_TOKENS, decoded and encoded again by
    `tok`, must give the same ids: a byte-level BPE round-trips its own encoding exactly,
    while another tokenizer's ids (of the same vocabulary size) decode to text it splits
    otherwise."""
    head = [int(t) for t in shards.tokens[:ROUND_TRIP_TOKENS]]
    starts = [i for i, t in enumerate(head) if t == tok.bos_id] + [len(head)]
    if head and head[0] != tok.bos_id:
        raise RunDirError(f"{shards.path}: does not start with the bos token {tok.bos_id} of "
                          "pretrain.tokenizer; give the tokenizer that wrote these shards")
    # Whole documents only: the last one may be cut by the window (unless the split ends there).
    complete = starts if shards.n_tokens <= ROUND_TRIP_TOKENS else starts[:-1]
    for first, end in zip(complete, complete[1:], strict=False):
        ids = head[first + 1 : end]
        if tok.encode(tok.decode_bytes(ids).decode("utf-8", errors="replace")) != ids:
            raise RunDirError(
                f"{shards.path}: the document at token {first} does not re-encode to the same ids "
                "with pretrain.tokenizer; these shards were written by another tokenizer"
            )


def given_tokenizer(p: PretrainConfig) -> Tokenizer | None:
    """`pretrain.tokenizer` loaded, or None when the run trains its own."""
    return load_tokenizer(Path(p.tokenizer).expanduser()) if p.tokenizer else None
