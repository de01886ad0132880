"""Where probes come from: the run's built-in sets, the real public sets, and any CSV/JSONL file.

A source spec is one string (the `--probes` option and `redteam.probes` take a list):
  builtin                  the run's corpus/eval/ held-out harmful + benign + bias sets
  advbench                 AdvBench harmful behaviours (`goal`), one category
  harmbench                HarmBench text behaviours, by SemanticCategory (context prepended)
  jailbreak-prompts        in-the-wild jailbreak prompts: an attack (`in_the_wild`), not requests
  crows-pairs              CrowS-Pairs likelihood pairs
  bbq                      BBQ QA items (the categories present in the folder)
  csv:PATH:COLUMN          harmful prompts from a CSV column (a `category` column is used if any)
  jsonl:PATH:FIELD         harmful prompts from a JSONL field (likewise `category`)
A bad record (missing field, empty prompt, broken JSON line) is skipped and counted in
`Probes.skipped`, never dropped silently; a file with no usable record is an error.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatforge.errors import ConfigError, InputError

REAL_SETS = ("advbench", "harmbench", "jailbreak-prompts", "crows-pairs", "bbq")


@dataclass(frozen=True)
class Request:
    """One request put to the model: harmful (should be refused) or a benign look-alike."""

    prompt: str
    lang: str
    category: str
    source: str
    harmful: bool = True


@dataclass(frozen=True)
class Pair:
    """CrowS-Pairs style: the more and the less stereotypical sentence of a minimal pair."""

    more: str
    less: str
    bias_type: str
    source: str
    lang: str = "en"


@dataclass(frozen=True)
class BBQItem:
    """A BBQ question with three answers; `target` is the stereotyped group's answer."""

    context: str
    question: str
    answers: tuple[str, str, str]
    label: int
    target: int
    unknown: int
    ambiguous: bool
    negative: bool
    category: str
    source: str
    lang: str = "en"


@dataclass
class Probes:
    """Everything the red team asks, gathered from the sources, with what was skipped."""

    harmful: list[Request] = field(default_factory=list)
    benign: list[Request] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    bbq: list[BBQItem] = field(default_factory=list)
    wild_templates: list[str] = field(default_factory=list)  # in-the-wild jailbreak prompts
    skipped: Counter[str] = field(default_factory=Counter)  # "file: reason" -> count

    def extend(self, other: Probes) -> None:
        self.harmful += other.harmful
        self.benign += other.benign
        self.pairs += other.pairs
        self.bbq += other.bbq
        self.wild_templates += other.wild_templates
        self.skipped.update(other.skipped)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    csv.field_size_limit(sys.maxsize)  # in-the-wild prompts run to tens of kilobytes
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: unreadable CSV ({exc})") from None


def _jsonl_rows(path: Path, out: Probes) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            out.skipped[f"{path.name}: invalid JSON"] += 1
            continue
        if not isinstance(rec, dict):
            out.skipped[f"{path.name}: not an object"] += 1
            continue
        rows.append((i, rec))
    return rows


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def prompt_file(kind: str, path: Path, column: str, name: str | None = None) -> Probes:
    """Harmful prompts from one CSV column or JSONL field: the generic `csv:`/`jsonl:` source."""
    out = Probes()
    name = name or path.stem
    records = ([(i, r) for i, r in enumerate(_csv_rows(path), 2)] if kind == "csv"
               else _jsonl_rows(path, out))
    if kind == "csv" and records and column not in records[0][1]:
        raise InputError(f"{path}: no column {column!r} (columns: {', '.join(k for k in records[0][1] if k)})")
    for _, rec in records:
        prompt = _text(rec.get(column))
        if prompt is None:
            out.skipped[f"{path.name}: empty or missing {column!r}"] += 1
            continue
        category = _text(rec.get("category")) or name
        out.harmful.append(Request(prompt, _text(rec.get("lang")) or "en", category, name))
    if not out.harmful:
        raise InputError(f"{path}: no usable prompt in {column!r} ({sum(out.skipped.values())} records skipped)")
    return out


def builtin(corpus: Path) -> Probes:
    """The run's held-out built-in sets under corpus/eval/ (written by the corpus stage)."""
    root = corpus / "eval"
    if not (root / "harmful_heldout.jsonl").is_file():
        raise InputError(f"{root / 'harmful_heldout.jsonl'}: missing; run the corpus stage first")
    out = Probes()
    for stem, harmful in (("harmful_heldout", True), ("benign_heldout", False)):
        for _, r in _jsonl_rows(root / f"{stem}.jsonl", out):
            prompt = _text(r.get("prompt"))
            if prompt is None:
                out.skipped[f"{stem}.jsonl: no prompt"] += 1
                continue
            req = Request(prompt, r.get("lang", "en"), r.get("category", stem), "builtin", harmful)
            (out.harmful if harmful else out.benign).append(req)
    for _, r in _jsonl_rows(root / "crows_heldout.jsonl", out):
        pair = _pair(r, "builtin", r.get("lang", "en"))
        if pair is None:
            out.skipped["crows_heldout.jsonl: needs sent_more, sent_less"] += 1
        else:
            out.pairs.append(pair)
    for _, r in _jsonl_rows(root / "bbq_heldout.jsonl", out):
        try:
            out.bbq.append(BBQItem(
                r["context"], r["question"], (r["ans0"], r["ans1"], r["ans2"]), int(r["label"]),
                int(r["target"]), int(r["unknown"]), r["context_condition"] == "ambig",
                r["question_polarity"] == "neg", r.get("category", "bbq"), "builtin", r.get("lang", "en")))
        except (KeyError, TypeError, ValueError):
            out.skipped["bbq_heldout.jsonl: missing BBQ fields"] += 1
    return out


def _pair(r: dict[str, Any], source: str, lang: str = "en") -> Pair | None:
    more, less = _text(r.get("sent_more")), _text(r.get("sent_less"))
    if more is None or less is None:
        return None
    return Pair(more, less, r.get("bias_type") or "unknown", source, lang)


def advbench(root: Path) -> Probes:
    return prompt_file("csv", root / "advbench" / "harmful_behaviors.csv", "goal", "advbench")


def harmbench(root: Path) -> Probes:
    """HarmBench text behaviours; a contextual one is asked with its context before it."""
    path = root / "harmbench" / "harmbench_behaviors_text_all.csv"
    out = Probes()
    for r in _csv_rows(path):
        behaviour = _text(r.get("Behavior"))
        if behaviour is None:
            out.skipped[f"{path.name}: empty Behavior"] += 1
            continue
        context = _text(r.get("ContextString"))
        prompt = f"{context}\n\n{behaviour}" if context else behaviour
        out.harmful.append(Request(prompt, "en", _text(r.get("SemanticCategory")) or "harmbench", "harmbench"))
    return out


def jailbreak_prompts(root: Path) -> Probes:
    """In-the-wild jailbreak prompts, used as wrappers (`in_the_wild` attack) around requests."""
    path = root / "jailbreak-prompts" / "jailbreak_prompts_2023_05_07.csv"
    out = Probes()
    for r in _csv_rows(path):
        prompt = _text(r.get("prompt"))
        if prompt is None:
            out.skipped[f"{path.name}: empty prompt"] += 1
        else:
            out.wild_templates.append(prompt)
    return out


def crows_pairs(root: Path) -> Probes:
    path = root / "crows-pairs" / "crows_pairs_anonymized.csv"
    out = Probes()
    for r in _csv_rows(path):
        pair = _pair(r, "crows-pairs")
        if pair is None:
            out.skipped[f"{path.name}: needs sent_more, sent_less"] += 1
        else:
            out.pairs.append(pair)
    return out


def bbq_record(r: dict[str, Any]) -> BBQItem | None:
    """A BBQ record, its stereotyped answer found from answer_info and stereotyped_groups;
    None when no single answer names a stereotyped group."""
    info, groups = r["answer_info"], {g.lower() for g in r["additional_metadata"]["stereotyped_groups"]}
    tags = [[t.lower() for t in info[f"ans{i}"]] for i in range(3)]
    unknown = [i for i in range(3) if "unknown" in tags[i]]
    # Exact names only: "nonDisabled" contains "disabled" but is the other group.
    targets = [i for i in range(3) if i not in unknown and not tags[i][-1].startswith("non")
               and groups.intersection(tags[i])]
    if len(unknown) != 1 or len(targets) != 1:
        return None
    return BBQItem(r["context"], r["question"], (r["ans0"], r["ans1"], r["ans2"]), int(r["label"]),
                   targets[0], unknown[0], r["context_condition"] == "ambig",
                   r["question_polarity"] == "neg", r["category"], "bbq")


def bbq(root: Path) -> Probes:
    out = Probes()
    files = sorted((root / "bbq").glob("*.jsonl"))
    if not files:
        raise InputError(f"{root / 'bbq'}: no *.jsonl files")
    for path in files:
        for _, r in _jsonl_rows(path, out):
            try:
                item = bbq_record(r)
            except (KeyError, TypeError, ValueError, AttributeError):
                out.skipped[f"{path.name}: missing BBQ fields"] += 1
                continue
            if item is None:
                out.skipped[f"{path.name}: no single stereotyped answer"] += 1
            else:
                out.bbq.append(item)
    return out


_REAL = {"advbench": advbench, "harmbench": harmbench, "jailbreak-prompts": jailbreak_prompts,
         "crows-pairs": crows_pairs, "bbq": bbq}


def load(spec: str, corpus: Path, data_root: Path) -> Probes:
    """The probes one source spec names (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if kind == "builtin" and not rest:
        return builtin(corpus)
    if kind in _REAL and not rest:
        if not (data_root / kind).is_dir():
            raise InputError(f"{data_root / kind}: not found (set redteam.data_root to the shared data folder)")
        return _REAL[kind](data_root)
    if kind in ("csv", "jsonl"):
        path, sep, column = rest.rpartition(":")
        if not sep or not path or not column:
            raise ConfigError(f"probe source {spec!r}: expected {kind}:PATH:{'COLUMN' if kind == 'csv' else 'FIELD'}")
        return prompt_file(kind, Path(path), column)
    raise ConfigError(f"unknown probe source {spec!r} (known: builtin, {', '.join(REAL_SETS)}, csv:PATH:COLUMN, jsonl:PATH:FIELD)")


def probe_files(specs: list[str]) -> list[str]:
    """The user files `csv:`/`jsonl:` specs name, whose bytes join the stage's cache key."""
    return [spec.partition(":")[2].rpartition(":")[0] for spec in specs
            if spec.partition(":")[0] in ("csv", "jsonl")]


def load_all(specs: list[str], corpus: Path, data_root: Path) -> Probes:
    out = Probes()
    for spec in specs:
        out.extend(load(spec, corpus, data_root))
    return out
