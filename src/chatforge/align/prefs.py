"""The preference store: pairs of answers to one prompt and who preferred which, in SQLite.

One file, `runs/<name>/prefs/prefs.db`, shared by every writer: people labelling in the
terminal or the web page, judges, importers. SQLite in WAL mode with `synchronous=FULL` and a
busy timeout lets several processes write at once, and a label is committed (fsynced) before
`label()` returns, so killing any process (even `kill -9`) loses no committed label.

Tables: `pairs` (prompt, responses A and B, each with a meta dict: which model and sampling
settings produced it), `labels` (each labeller's current choice per pair; a later label of the
same pair by the same labeller replaces theirs) and `label_history` (every label and undo, in
order, never rewritten).

Prompts: `prompt` is the text of the user's request. Where the request is more than a single
user turn (an HH-RLHF dialogue, a llamafactory conversation with a system message or earlier
turns), both metas carry `messages`: the whole dialogue before the responses as a list of
{"role", "content"} dicts, ending with the user turn that is `prompt`. Consumers render
`messages` when present, else a single user turn of `prompt`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from chatforge.errors import InputError
from chatforge.runs import atomic_path

CHOICES = ("A", "B", "tie", "skip")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY,
    prompt TEXT NOT NULL,
    response_a TEXT NOT NULL,
    response_b TEXT NOT NULL,
    meta_a TEXT NOT NULL,
    meta_b TEXT NOT NULL,
    source TEXT NOT NULL,
    split TEXT NOT NULL,
    created REAL NOT NULL,
    digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pairs_digest ON pairs(digest);
CREATE INDEX IF NOT EXISTS pairs_split ON pairs(split);
CREATE TABLE IF NOT EXISTS labels (
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    labeller TEXT NOT NULL,
    choice TEXT NOT NULL,
    at REAL NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (pair_id, labeller)
);
CREATE INDEX IF NOT EXISTS labels_labeller ON labels(labeller, seq);
CREATE TABLE IF NOT EXISTS label_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id INTEGER NOT NULL,
    labeller TEXT NOT NULL,
    choice TEXT,
    action TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass
class Pair:
    id: int
    prompt: str
    response_a: str
    response_b: str
    meta_a: dict
    meta_b: dict
    source: str
    split: str
    created: float


@dataclass
class Label:
    pair_id: int
    choice: str
    labeller: str
    at: float


@dataclass
class ImportStats:
    """What an import read, stored and skipped (with a count per reason)."""

    file: str
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "read": self.read, "imported": self.imported,
                "duplicates": self.duplicates, "skipped": dict(self.skipped)}


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Agreement of two raters beyond chance: (p_o - p_e) / (1 - p_e).

    Where chance agreement is already 1 (both raters used one and the same category
    throughout) the raters agree perfectly and 1.0 is returned; sklearn gives NaN there."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} ratings against {len(b)}")
    if not a:
        raise ValueError("cohen_kappa: no ratings")
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e == 1.0:
        return 1.0
    return (p_o - p_e) / (1.0 - p_e)


def _digest(prompt: str, response_a: str, response_b: str, messages: Any) -> str:
    """Content key of a pair, the same whichever side each response is on (import dedup)."""
    sides = sorted([response_a, response_b])
    blob = json.dumps([prompt, sides, messages], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _chosen_is_a(digest: str, seed: int) -> bool:
    """The seeded coin flip that places an imported chosen answer as A or B: per row (not
    per position in the file), so it does not depend on order or on what came before."""
    return hashlib.sha256(f"{seed}:{digest}".encode()).digest()[0] & 1 == 0


class PrefStore:
    """Preference pairs and labels in one SQLite file, safe for several processes at once."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0, seed: int = 0):
        path = Path(path)
        if path.is_dir() or path.suffix != ".db":
            path = path / "prefs.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.seed = path, seed
        # One connection per store, used from several threads (the web server) under a lock.
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=busy_timeout_s)
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: not a preference store ({exc})") from None
        self._create_schema()

    def _create_schema(self) -> None:
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> PrefStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    class _Txn:
        def __init__(self, store: PrefStore):
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                # IMMEDIATE takes the write lock up front: no deadlock when two readers
                # both try to upgrade, and busy_timeout applies to the wait.
                self.store._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            try:
                self.store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _write(self) -> PrefStore._Txn:
        return PrefStore._Txn(self)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- pairs ---------------------------------------------------------------------------

    @staticmethod
    def _pair_row(prompt: str, response_a: str, response_b: str, meta_a: dict | None,
                  meta_b: dict | None, source: str, split: str) -> tuple:
        for name, value in (("prompt", prompt), ("response_a", response_a),
                            ("response_b", response_b), ("source", source), ("split", split)):
            if not isinstance(value, str):
                raise InputError(f"pair: {name} must be text, not {type(value).__name__}")
        meta_a, meta_b = dict(meta_a or {}), dict(meta_b or {})
        digest = _digest(prompt, response_a, response_b, meta_a.get("messages"))
        return (prompt, response_a, response_b, json.dumps(meta_a, ensure_ascii=False),
                json.dumps(meta_b, ensure_ascii=False), source, split, time.time(), digest)

    _INSERT = ("INSERT INTO pairs (prompt, response_a, response_b, meta_a, meta_b, source, "
               "split, created, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def add_pair(self, prompt: str, response_a: str, response_b: str, *,
                 meta_a: dict | None = None, meta_b: dict | None = None,
                 source: str = "generated", split: str = "train") -> int:
        """Store one pair; its id."""
        row = self._pair_row(prompt, response_a, response_b, meta_a, meta_b, source, split)
        with self._write() as db:
            return int(db.execute(self._INSERT, row).lastrowid)

    def add_pairs(self, rows: Iterable[dict]) -> list[int]:
        """Store many pairs in one transaction (all or none); their ids in order. Each row
        has add_pair's arguments as keys."""
        prepared = [self._pair_row(r["prompt"], r["response_a"], r["response_b"],
                                   r.get("meta_a"), r.get("meta_b"),
                                   r.get("source", "generated"), r.get("split", "train"))
                    for r in rows]
        with self._write() as db:
            return [int(db.execute(self._INSERT, row).lastrowid) for row in prepared]

    _PAIR_COLS = "id, prompt, response_a, response_b, meta_a, meta_b, source, split, created"

    @staticmethod
    def _to_pair(row: tuple) -> Pair:
        return Pair(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]),
                    row[6], row[7], row[8])

    def pair(self, pair_id: int) -> Pair:
        rows = self._read(f"SELECT {self._PAIR_COLS} FROM pairs WHERE id = ?", (pair_id,))
        if not rows:
            raise InputError(f"{self.path}: no pair {pair_id}")
        return self._to_pair(rows[0])

    def pairs(self, split: str | None = None, source: str | None = None) -> list[Pair]:
        """Every pair, oldest first, optionally of one split and/or source."""
        where, args = self._filters(split=split, source=source)
        rows = self._read(f"SELECT {self._PAIR_COLS} FROM pairs {where} ORDER BY id", args)
        return [self._to_pair(r) for r in rows]

    @staticmethod
    def _filters(**conditions: object) -> tuple[str, list[Any]]:
        parts = [(f"{k} = ?", v) for k, v in conditions.items() if v is not None]
        if not parts:
            return "", []
        return "WHERE " + " AND ".join(p for p, _ in parts), [v for _, v in parts]

    def count(self, split: str | None = None) -> int:
        where, args = self._filters(split=split)
        return int(self._read(f"SELECT COUNT(*) FROM pairs {where}", args)[0][0])

    # -- labels --------------------------------------------------------------------------

    def label(self, pair_id: int, choice: str, labeller: str) -> None:
        """Record a labeller's choice, committed before returning; it replaces their
        earlier label of the same pair (the history keeps both)."""
        self.label_many([(pair_id, choice)], labeller)

    def label_many(self, choices: Iterable[tuple[int, str]], labeller: str) -> None:
        """Record (pair_id, choice) labels by one labeller in one transaction: a judge's
        thousand labels cost one fsync instead of a thousand."""
        choices = list(choices)
        for _, choice in choices:
            if choice not in CHOICES:
                raise InputError(f"label: choice {choice!r} is not one of {', '.join(CHOICES)}")
        if not isinstance(labeller, str) or not labeller.strip():
            raise InputError("label: the labeller needs a name")
        now = time.time()
        with self._write() as db:
            for pair_id, choice in choices:
                if db.execute("SELECT 1 FROM pairs WHERE id = ?", (pair_id,)).fetchone() is None:
                    raise InputError(f"{self.path}: no pair {pair_id}")
                seq = db.execute(
                    "INSERT INTO label_history (pair_id, labeller, choice, action, at) "
                    "VALUES (?, ?, ?, 'label', ?)", (pair_id, labeller, choice, now)).lastrowid
                db.execute("INSERT OR REPLACE INTO labels (pair_id, labeller, choice, at, seq) "
                           "VALUES (?, ?, ?, ?, ?)", (pair_id, labeller, choice, now, seq))

    def undo(self, labeller: str) -> int | None:
        """Remove the labeller's most recent label (the pair is shown to them again); the
        pair's id, or None when they have no label left."""
        with self._write() as db:
            row = db.execute("SELECT pair_id FROM labels WHERE labeller = ? "
                             "ORDER BY seq DESC LIMIT 1", (labeller,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM labels WHERE pair_id = ? AND labeller = ?",
                       (row[0], labeller))
            db.execute("INSERT INTO label_history (pair_id, labeller, choice, action, at) "
                       "VALUES (?, ?, NULL, 'undo', ?)", (row[0], labeller, time.time()))
            return int(row[0])

    def next_unlabelled(self, labeller: str, split: str | None = None) -> Pair | None:
        """The oldest pair this labeller has not labelled (skips count as labelled), so a
        labeller resumes where they stopped and never sees a pair twice."""
        extra, args = ("AND p.split = ?", [split]) if split is not None else ("", [])
        rows = self._read(
            f"SELECT {', '.join('p.' + c.strip() for c in self._PAIR_COLS.split(','))} "
            "FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.pair_id = p.id "
            f"AND l.labeller = ?) {extra} ORDER BY p.id LIMIT 1", [labeller, *args])
        return self._to_pair(rows[0]) if rows else None

    def labelled_count(self, labeller: str, split: str | None = None) -> int:
        extra, args = ("AND p.split = ?", [split]) if split is not None else ("", [])
        return int(self._read(
            "SELECT COUNT(*) FROM labels l JOIN pairs p ON p.id = l.pair_id "
            f"WHERE l.labeller = ? {extra}", [labeller, *args])[0][0])

    def labels(self, pair_id: int | None = None, labeller: str | None = None) -> list[Label]:
        """Current labels (one per labeller and pair), in the order they were given."""
        where, args = self._filters(pair_id=pair_id, labeller=labeller)
        rows = self._read(f"SELECT pair_id, choice, labeller, at FROM labels {where} "
                          "ORDER BY seq", args)
        return [Label(*r) for r in rows]

    def history(self, labeller: str | None = None) -> list[dict[str, Any]]:
        """Every label and undo ever recorded, oldest first."""
        where, args = self._filters(labeller=labeller)
        rows = self._read("SELECT seq, pair_id, labeller, choice, action, at FROM "
                          f"label_history {where} ORDER BY seq", args)
        keys = ("seq", "pair_id", "labeller", "choice", "action", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- derived views -------------------------------------------------------------------

    def preferences(self, split: str | None = None,
                    labellers: Sequence[str] | None = None) -> list[dict]:
        """Pairs with a majority preference: among the chosen labellers' A and B labels
        (ties and skips do not vote), more A than B or more B than A; an even vote is left
        out. Each as {"pair_id", "prompt", "chosen", "rejected", "split", "messages"}
        (messages: the dialogue before the answers, or None for a single user turn)."""
        votes: dict[int, Counter] = defaultdict(Counter)
        wanted = set(labellers) if labellers is not None else None
        for lab in self.labels():
            if lab.choice in ("A", "B") and (wanted is None or lab.labeller in wanted):
                votes[lab.pair_id][lab.choice] += 1
        out = []
        for pair in self.pairs(split=split):
            v = votes.get(pair.id)
            if not v or v["A"] == v["B"]:
                continue
            a_wins = v["A"] > v["B"]
            out.append({
                "pair_id": pair.id, "prompt": pair.prompt,
                "chosen": pair.response_a if a_wins else pair.response_b,
                "rejected": pair.response_b if a_wins else pair.response_a,
                "split": pair.split, "messages": pair.meta_a.get("messages"),
            })
        return out

    def stats(self) -> dict[str, Any]:
        """Labels per labeller (by choice), agreement between every two labellers on the
        pairs both labelled (skips left out: a skip is no opinion), raw and Cohen's kappa,
        and A/B position bias (share of A among A and B labels; 0.5 is none)."""
        by_labeller: dict[str, dict[int, str]] = defaultdict(dict)
        for lab in self.labels():
            by_labeller[lab.labeller][lab.pair_id] = lab.choice
        per = {}
        for name, choices in sorted(by_labeller.items()):
            c = Counter(choices.values())
            ab = c["A"] + c["B"]
            per[name] = {"labels": len(choices), **{k: c[k] for k in CHOICES},
                         "a_share": c["A"] / ab if ab else None}
        agreement = []
        for x, y in combinations(sorted(by_labeller), 2):
            both = sorted(p for p in by_labeller[x].keys() & by_labeller[y].keys()
                          if "skip" not in (by_labeller[x][p], by_labeller[y][p]))
            if not both:
                continue
            a = [by_labeller[x][p] for p in both]
            b = [by_labeller[y][p] for p in both]
            agreement.append({"labellers": [x, y], "pairs": len(both),
                              "raw": sum(i == j for i, j in zip(a, b, strict=True)) / len(both),
                              "kappa": cohen_kappa(a, b)})
        total = Counter(ch for d in by_labeller.values() for ch in d.values())
        ab = total["A"] + total["B"]
        return {"pairs": self.count(), "labels": sum(total.values()), "labellers": per,
                "agreement": agreement,
                "position_bias": {"A": total["A"], "B": total["B"],
                                  "a_share": total["A"] / ab if ab else None}}

    # -- import and export ---------------------------------------------------------------

    def _import(self, path: Path, rows: Iterator[tuple[dict | None, str | None]],
                source: str, split: str) -> ImportStats:
        """Store (prompt, messages, chosen, rejected) rows as pairs with the chosen side
        placed by a seeded coin flip, plus the file's label for each, in one transaction.
        `rows` yields (row, None) or (None, reason it was skipped)."""
        stats = ImportStats(file=str(path))
        labeller = f"import:{path.name}"
        prepared = []
        seen = {r[0] for r in self._read("SELECT digest FROM pairs WHERE source = ?", (source,))}
        for row, reason in rows:
            stats.read += 1
            if row is None:
                stats.skipped[reason or "bad row"] += 1
                continue
            meta = {"messages": row["messages"]} if row.get("messages") else {}
            meta["origin"] = labeller
            digest = _digest(row["prompt"], row["chosen"], row["rejected"], meta.get("messages"))
            if digest in seen:
                stats.duplicates += 1
                continue
            seen.add(digest)
            a_first = _chosen_is_a(digest, self.seed)
            a, b = (row["chosen"], row["rejected"]) if a_first else (row["rejected"], row["chosen"])
            prepared.append((self._pair_row(row["prompt"], a, b, meta, meta, source, split),
                             "A" if a_first else "B"))
        if not prepared and not stats.duplicates:
            why = ", ".join(f"{k} x{v}" for k, v in stats.skipped.items()) or "no rows"
            raise InputError(f"{path}: no preference pair to import ({why})")
        now = time.time()
        with self._write() as db:
            for pair_row, choice in prepared:
                pid = db.execute(self._INSERT, pair_row).lastrowid
                seq = db.execute(
                    "INSERT INTO label_history (pair_id, labeller, choice, action, at) "
                    "VALUES (?, ?, ?, 'label', ?)", (pid, labeller, choice, now)).lastrowid
                db.execute("INSERT INTO labels (pair_id, labeller, choice, at, seq) "
                           "VALUES (?, ?, ?, ?, ?)", (pid, labeller, choice, now, seq))
        stats.imported = len(prepared)
        return stats

    def import_jsonl(self, path: str | Path, split: str = "train") -> ImportStats:
        """Rows {"prompt", "chosen", "rejected"} (text; optional "messages" list) -> pairs
        labelled by "import:<file name>"; bad rows skipped and counted."""
        path = Path(path)

        def rows() -> Iterator[tuple[dict | None, str | None]]:
            for obj, reason in _json_lines(path):
                if obj is None:
                    yield None, reason
                    continue
                if not isinstance(obj, dict):
                    yield None, "not an object"
                    continue
                bad = [k for k in ("prompt", "chosen", "rejected")
                       if not isinstance(obj.get(k), str) or not obj[k].strip()]
                if bad:
                    yield None, f"missing or empty {bad[0]}"
                    continue
                messages = obj.get("messages")
                if messages is not None and _check_messages(messages) is not None:
                    yield None, _check_messages(messages)
                    continue
                yield _same_answers(obj["prompt"], messages, obj["chosen"], obj["rejected"])

        return self._import(path, rows(), "jsonl", split)

    def import_hh_rlhf(self, path: str | Path, split: str = "train") -> ImportStats:
        """Anthropic HH-RLHF rows {"chosen", "rejected"}: two "\\n\\nHuman: ...\\n\\nAssistant:
        ..." transcripts identical up to the last assistant turn. prompt = the last human
        turn, messages (in meta) = the dialogue before the answers, answers = the last turns."""
        path = Path(path)

        def rows() -> Iterator[tuple[dict | None, str | None]]:
            for obj, reason in _json_lines(path):
                if obj is None or not isinstance(obj, dict):
                    yield None, reason or "not an object"
                    continue
                if not all(isinstance(obj.get(k), str) for k in ("chosen", "rejected")):
                    yield None, "missing chosen or rejected transcript"
                    continue
                good, bad = _hh_turns(obj["chosen"]), _hh_turns(obj["rejected"])
                if good is None or bad is None:
                    yield None, "not a Human/Assistant transcript"
                    continue
                if good[:-1] != bad[:-1]:
                    yield None, "transcripts differ before the last answer"
                    continue
                prefix = good[:-1]
                if prefix[-1]["role"] != "user" or not prefix[-1]["content"]:
                    yield None, "no human turn before the answers"
                    continue
                messages = prefix if len(prefix) > 1 else None
                yield _same_answers(prefix[-1]["content"], messages, good[-1]["content"],
                                    bad[-1]["content"])

        return self._import(path, rows(), "hh-rlhf", split)

    def import_llamafactory(self, path: str | Path, split: str = "train") -> ImportStats:
        """LLaMA-Factory's DPO layout (dpo_en_demo.json): a JSON list of {"conversations":
        [{"from", "value"}], "chosen": {"from", "value"}, "rejected": {...}}; roles human,
        gpt and system. prompt = the last human turn, messages = the whole conversation
        when it is more than that one turn."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a JSON file ({exc})") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of preference records")

        def rows() -> Iterator[tuple[dict | None, str | None]]:
            for obj in data:
                if not isinstance(obj, dict):
                    yield None, "not an object"
                    continue
                turns = obj.get("conversations")
                if not isinstance(turns, list) or not turns:
                    yield None, "no conversations"
                    continue
                messages = [_lf_message(t) for t in turns]
                if any(m is None for m in messages):
                    yield None, "a turn without a known role and text"
                    continue
                answers = [obj.get(k) for k in ("chosen", "rejected")]
                if not all(isinstance(a, dict) and isinstance(a.get("value"), str)
                           and a["value"].strip() for a in answers):
                    yield None, "missing chosen or rejected answer"
                    continue
                if messages[-1]["role"] != "user":  # type: ignore[index]
                    yield None, "the conversation does not end with a human turn"
                    continue
                yield _same_answers(messages[-1]["content"],  # type: ignore[index]
                                    messages if len(messages) > 1 else None,
                                    answers[0]["value"], answers[1]["value"])  # type: ignore[index]

        return self._import(path, rows(), "llamafactory", split)

    def export_jsonl(self, path: str | Path, split: str | None = None) -> int:
        """Write the majority preferences as prompt/chosen/rejected JSONL (plus "messages"
        where the prompt is a dialogue), the form import_jsonl reads; the row count."""
        prefs = self.preferences(split=split)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for p in prefs:
                row = {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                if p["messages"]:
                    row["messages"] = p["messages"]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(prefs)


def _same_answers(prompt: str, messages: list | None, chosen: str,
                  rejected: str) -> tuple[dict | None, str | None]:
    if not chosen.strip() or not rejected.strip():
        return None, "empty answer"
    if chosen == rejected:
        return None, "chosen and rejected are the same"
    return {"prompt": prompt, "messages": messages, "chosen": chosen, "rejected": rejected}, None


def _check_messages(messages: Any) -> str | None:
    """Why a messages list is malformed, or None."""
    if not isinstance(messages, list) or not messages:
        return "messages is not a non-empty list"
    for m in messages:
        if not (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                and isinstance(m.get("content"), str)):
            return "a message without a known role and text"
    return None


_LF_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
             "system": "system"}


def _lf_message(turn: Any) -> dict | None:
    if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
        return None
    role = _LF_ROLES.get(turn.get("from"))  # type: ignore[arg-type]
    return {"role": role, "content": turn["value"]} if role else None


def _hh_turns(text: str) -> list[dict[str, str]] | None:
    """An HH-RLHF transcript as messages ending in an assistant turn, or None."""
    parts = text.split("\n\nHuman: ")
    if parts[0].strip():
        return None  # text before the first human turn
    turns: list[dict[str, str]] = []
    for part in parts[1:]:
        human, *answers = part.split("\n\nAssistant: ")
        turns.append({"role": "user", "content": human.strip()})
        turns += [{"role": "assistant", "content": a.strip()} for a in answers]
    if len(turns) < 2 or turns[-1]["role"] != "assistant":
        return None
    return turns


def _json_lines(path: Path) -> Iterator[tuple[Any, str | None]]:
    """(object, None) per parsed line of a .jsonl or .jsonl.gz, or (None, reason); a
    truncated gzip ends the file with one "truncated file" skip."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        f = opener(path, "rt", encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    with f:
        try:
            for line in f:
                if not line.strip():
                    continue
                try:
                    yield json.loads(line), None
                except json.JSONDecodeError:
                    yield None, "not JSON"
        except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError, OSError) as exc:
            yield None, f"unreadable file ({type(exc).__name__})"
