"""Labelling preference pairs in the terminal: `chatforge prefs label RUN_DIR`.

One pair at a time (the prompt, then answers A and B side by side on a wide terminal, stacked
on a narrow one), one key per choice: a, b, t (tie), s (skip), u (undo the last label), q
(quit). Each label is committed before the next pair is shown, so quitting, a closed terminal
or a crash loses nothing, and the next session resumes at this labeller's first unlabelled
pair. The loop reads keys from any iterator, which is how the tests drive it.
"""

from __future__ import annotations

import os
import sys
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chatforge.align.prefs import Pair, PrefStore

KEYS = {"a": "A", "b": "B", "t": "tie", "s": "skip"}
HELP = "a = A better   b = B better   t = tie   s = skip   u = undo   q = quit"
# Below this width two columns of answer text are too narrow to read; stack them.
SIDE_BY_SIDE_MIN_WIDTH = 100


def keys_from(stream: TextIO) -> Iterator[str]:
    """Key presses: single bytes from a terminal (put it in cbreak mode first, see
    `terminal_keys`), or the non-blank characters of any other stream (a pipe, a file, a
    StringIO in tests); ends at end of input or Ctrl-C / Ctrl-D."""
    if stream.isatty():
        fd = stream.fileno()
        while (byte := os.read(fd, 1)) and byte not in (b"\x03", b"\x04"):
            yield byte.decode("latin-1").lower()
        return
    while ch := stream.read(1):
        if not ch.isspace():
            yield ch.lower()


@contextmanager
def terminal_keys(stream: TextIO) -> Iterator[Iterator[str]]:
    """keys_from(stream), with a terminal in cbreak mode for the whole session (so a key
    pressed while a pair is being drawn is neither echoed nor held until Enter)."""
    if not stream.isatty():
        yield keys_from(stream)
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield keys_from(stream)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def render_pair(pair: Pair, done: int, total: int, width: int) -> Group:
    """The screen for one pair; every piece of text is shown as text, never as markup."""
    parts = []
    for m in pair.meta_a.get("messages", [])[:-1]:  # the dialogue before the request
        parts.append(Text(f"{m['role']}: ", style="dim") + Text(m["content"], style="dim"))
    parts.append(Panel(Text(pair.prompt), title=f"prompt (pair {pair.id})", title_align="left"))
    a = Panel(Text(pair.response_a), title="A", title_align="left", border_style="cyan")
    b = Panel(Text(pair.response_b), title="B", title_align="left", border_style="magenta")
    if width >= SIDE_BY_SIDE_MIN_WIDTH:
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(ratio=1)
        grid.add_column(ratio=1)
        grid.add_row(a, b)
        parts.append(grid)
    else:
        parts += [a, b]
    parts.append(Text(f"{done} labelled of {total}   {HELP}", style="bold"))
    return Group(*parts)


def label_loop(store: PrefStore, labeller: str, keys: Iterator[str], console: Console,
               split: str | None = None) -> dict[str, int]:
    """Show this labeller's unlabelled pairs until they are all labelled, `q` or the end
    of input; what the session did."""
    session = {"labelled": 0, "undone": 0}
    while True:
        total = store.count(split)
        pair = store.next_unlabelled(labeller, split)
        if pair is None:
            console.print(f"All {total} pairs labelled by {labeller}.", markup=False)
            break
        console.print(render_pair(pair, store.labelled_count(labeller, split), total,
                                  console.width))
        key = next((k for k in keys if k in KEYS or k in "uq" or _unknown(console, k)), "q")
        if key == "q":
            break
        if key == "u":
            undone = store.undo(labeller)
            console.print("nothing to undo" if undone is None else f"undid pair {undone}",
                          markup=False)
            session["undone"] += undone is not None
            continue
        store.label(pair.id, KEYS[key], labeller)
        session["labelled"] += 1
    session["done"] = store.labelled_count(labeller, split)
    session["total"] = store.count(split)
    return session


def _unknown(console: Console, key: str) -> bool:
    console.print(f"unknown key {key!r}: {HELP}", markup=False)
    return False


def default_labeller() -> str:
    """The labeller's name when none is given: the login name."""
    return os.environ.get("USER") or os.environ.get("USERNAME") or "human"


def label_terminal(store: PrefStore, labeller: str, split: str | None = None) -> dict[str, int]:
    """label_loop on this process's terminal (or piped stdin)."""
    with terminal_keys(sys.stdin) as keys:
        return label_loop(store, labeller, keys, Console(), split)
