"""Human labelling: the terminal loop driven by scripted keys and through a pty, the web app's
API, and the prefs commands."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console

from chatforge.align.prefs import PrefStore
from chatforge.cli import app
from chatforge.serve.label_app import create_app
from chatforge.serve.label_cli import keys_from, label_loop


def _store(root: Path, n: int = 5) -> PrefStore:
    s = PrefStore(root / "prefs")
    s.add_pairs([{"prompt": f"question {i}", "response_a": f"answer A{i}",
                  "response_b": f"answer B{i}"} for i in range(n)])
    return s


def _run(store: PrefStore, keys: str, width: int = 120) -> tuple[dict, str]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False)
    session = label_loop(store, "ann", keys_from(io.StringIO(keys)), console)
    return session, out.getvalue()


def test_scripted_keys_label_undo_and_quit(tmp_path: Path) -> None:
    store = _store(tmp_path)
    session, screen = _run(store, "a\nb x t u s q")
    assert session == {"labelled": 4, "undone": 1, "done": 3, "total": 5}
    assert [(lab.pair_id, lab.choice) for lab in store.labels(labeller="ann")] == [
        (1, "A"), (2, "B"), (3, "skip")]
    assert "unknown key 'x'" in screen and "undid pair 3" in screen
    assert "0 labelled of 5" in screen and "2 labelled of 5" in screen


def test_a_new_session_resumes_where_the_labeller_stopped(tmp_path: Path) -> None:
    store = _store(tmp_path, 3)
    _run(store, "a q")
    session, screen = _run(store, "bb")  # the end of input quits too
    assert session["done"] == 3 and "All 3 pairs labelled by ann." in screen
    assert "question 0" not in screen and "1 labelled of 3" in screen


def test_answers_side_by_side_when_wide_and_stacked_when_narrow(tmp_path: Path) -> None:
    store = _store(tmp_path, 1)
    _, wide = _run(store, "q", width=140)
    _, narrow = _run(store, "q", width=60)
    row = next(line for line in wide.splitlines() if "answer A0" in line)
    assert "answer B0" in row
    assert not any("answer A0" in line and "answer B0" in line for line in narrow.splitlines())


def test_markup_in_a_prompt_is_shown_as_text(tmp_path: Path) -> None:
    store = PrefStore(tmp_path / "p.db")
    store.add_pair("[bold red]hi[/] <script>", "[link=x]a[/link]", "b")
    _, screen = _run(store, "q")
    assert "[bold red]hi[/] <script>" in screen and "[link=x]a[/link]" in screen


def test_prefs_label_in_a_real_terminal_takes_single_keys(tmp_path: Path) -> None:
    store = _store(tmp_path, 3)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the chatforge command on the pty
        os.execv(sys.executable, [sys.executable, "-m", "chatforge", "prefs", "label",
                                  str(tmp_path), "--labeller", "tty"])
    screen = b""

    def read_until(text: bytes, timeout: float = 15) -> None:
        nonlocal screen
        end = time.time() + timeout
        while text not in screen and time.time() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
        assert text in screen, screen[-2000:]

    read_until(b"0 labelled of 3")
    os.write(fd, b"a")  # no Enter: the terminal is in cbreak mode
    read_until(b"1 labelled of 3")
    os.write(fd, b"b")
    read_until(b"2 labelled of 3")
    os.write(fd, b"q")
    read_until(b'"labelled": 2')
    os.waitpid(pid, 0)
    assert [lab.choice for lab in store.labels(labeller="tty")] == ["A", "B"]


def test_label_api_per_labeller_with_undo_and_stats(tmp_path: Path) -> None:
    _store(tmp_path, 3)
    client = TestClient(create_app(tmp_path / "prefs"))
    page = client.get("/")
    assert page.status_code == 200 and "/assets/label.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/assets/label.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/assets/..%2Fchat_cli.py").status_code == 404
    first = client.get("/api/next", params={"labeller": "ann"}).json()
    assert (first["pair"]["id"], first["done"], first["total"]) == (1, 0, 3)
    r = client.post("/api/label", json={"pair_id": 1, "choice": "A", "labeller": "ann"}).json()
    assert (r["saved"], r["pair"]["id"], r["done"]) == (1, 2, 1)
    assert client.get("/api/next", params={"labeller": "bob"}).json()["pair"]["id"] == 1
    client.post("/api/label", json={"pair_id": 1, "choice": "B", "labeller": "bob"})
    assert client.post("/api/undo", json={"labeller": "bob"}).json()["undone"] == 1
    client.post("/api/label", json={"pair_id": 1, "choice": "A", "labeller": "bob"})
    stats = client.get("/api/stats").json()
    assert stats["agreement"][0]["raw"] == 1.0 and stats["labellers"]["bob"]["A"] == 1
    bad = [({"pair_id": 1, "choice": "C", "labeller": "ann"}, 422),
           ({"pair_id": 99, "choice": "A", "labeller": "ann"}, 404),
           ({"pair_id": 1, "choice": "A", "labeller": "  "}, 422)]
    for body, code in bad:
        assert client.post("/api/label", json=body).status_code == code


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatforge", *args], capture_output=True,
                          text=True, timeout=60)


def test_prefs_import_export_and_stats_commands(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "yes", "rejected": "no"})
                           + "\n" for i in range(5)) + "garbage\n")
    r = _cli("prefs", "import", str(tmp_path), str(src), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["imported"] == 5 and "not JSON x1" in r.stderr
    r = _cli("prefs", "export", str(tmp_path), "--out", str(tmp_path / "out.jsonl"))
    assert json.loads(r.stdout)["rows"] == 5
    r = _cli("prefs", "stats", str(tmp_path))
    assert json.loads(r.stdout)["labellers"]["import:in.jsonl"]["labels"] == 5
    r = _cli("prefs", "import", str(tmp_path), str(src), "--format", "csv")
    assert r.returncode == 2 and "--format: 'csv' is not one of" in r.stderr
    r = _cli("prefs", "stats", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such run directory" in r.stderr


def test_the_prefs_sub_app_holds_the_human_commands() -> None:
    group = next(g for g in app.registered_groups if g.name == "prefs")
    names = {c.name for c in group.typer_instance.registered_commands}
    assert {"label", "serve", "import", "export", "stats"} <= names
