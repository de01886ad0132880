"""The web chat's conversations, kept on the server in SQLite inside the run directory.

WAL journal with synchronous=FULL: every committed message is on disk before the request that
wrote it returns, so a server killed with -9 loses nothing it has answered. One connection
guarded by a lock (the server's requests are short; SQLite serialises writers anyway).
Export and import use one JSON shape: {"title", "created", "messages": [{"role", "content"}]}.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from chatforge.errors import InputError
from chatforge.tokenizer.chat import ROLES

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (conversation, seq)
);
"""
MAX_TITLE = 200


class NotFound(KeyError):
    """No conversation with that id."""


class Store:
    """Conversations and their messages; every method is one transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, fn):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    def list(self) -> list[dict]:
        rows = self._tx(lambda db: db.execute(
            "SELECT id, title, created, updated FROM conversations ORDER BY updated DESC").fetchall())
        return [{"id": i, "title": t, "created": c, "updated": u} for i, t, c, u in rows]

    def create(self, title: str = "New chat", messages: Iterable[dict] = (), created: float | None = None) -> dict:
        now = time.time()
        cid = uuid.uuid4().hex
        msgs = list(messages)

        def go(db):
            db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?)",
                       (cid, _title(title), created or now, now))
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                           [(cid, i, m["role"], m["content"], now) for i, m in enumerate(msgs)])

        self._tx(go)
        return self.get(cid)

    def get(self, cid: str) -> dict:
        def go(db):
            row = db.execute("SELECT title, created, updated FROM conversations WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise NotFound(cid)
            msgs = db.execute("SELECT role, content FROM messages WHERE conversation = ? ORDER BY seq",
                              (cid,)).fetchall()
            return row, msgs

        (title, created, updated), msgs = self._tx(go)
        return {"id": cid, "title": title, "created": created, "updated": updated,
                "messages": [{"role": r, "content": c} for r, c in msgs]}

    def rename(self, cid: str, title: str) -> dict:
        def go(db):
            if db.execute("UPDATE conversations SET title = ?, updated = ? WHERE id = ?",
                          (_title(title), time.time(), cid)).rowcount == 0:
                raise NotFound(cid)

        self._tx(go)
        return self.get(cid)

    def delete(self, cid: str) -> None:
        def go(db):
            if db.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount == 0:
                raise NotFound(cid)

        self._tx(go)

    def append(self, cid: str, role: str, content: str) -> None:
        """Add one message at the end of a conversation."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

        def go(db):
            now = time.time()
            if db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, cid)).rowcount == 0:
                raise NotFound(cid)
            (seq,) = db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE conversation = ?",
                                (cid,)).fetchone()
            db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (cid, seq, role, content, now))

        self._tx(go)

    def export(self, cid: str) -> dict:
        c = self.get(cid)
        return {"title": c["title"], "created": c["created"], "messages": c["messages"]}

    def import_(self, data: object, source: str = "import") -> list[dict]:
        """Create conversations from an export (one object or a list of them); nothing is
        created when any of them is malformed."""
        items = data if isinstance(data, list) else [data]
        parsed = [_parse_export(item, f"{source}: conversation {i}") for i, item in enumerate(items)]
        return [self.create(title, msgs, created) for title, msgs, created in parsed]


def _title(title: str) -> str:
    title = " ".join(str(title).split())[:MAX_TITLE]
    return title or "New chat"


def _parse_export(item: object, where: str) -> tuple[str, list[dict], float | None]:
    if not isinstance(item, dict):
        raise InputError(f"{where}: not a JSON object")
    title = item.get("title", "Imported chat")
    if not isinstance(title, str):
        raise InputError(f"{where}: 'title' is not a string")
    messages = item.get("messages")
    if not isinstance(messages, list):
        raise InputError(f"{where}: 'messages' is missing or not a list")
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(f"{where}: message {j} needs a role ({', '.join(ROLES)}) and string content")
        out.append({"role": m["role"], "content": m["content"]})
    created = item.get("created")
    ok = isinstance(created, int | float) and not isinstance(created, bool) and math.isfinite(created)
    created = float(created) if ok else None
    return title, out, created
