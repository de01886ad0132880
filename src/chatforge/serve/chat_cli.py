"""`chatforge chat RUN_DIR`: talk to a trained model in the terminal.

Interactive mode keeps the conversation history and streams each reply token by token;
commands: /reset, /system TEXT, /temp X, /help, /quit. `--prompt "..."` prints one answer
on stdout and exits, for scripts. When the history outgrows the model's context, the oldest
turns are dropped (the system message is kept) so the conversation can go on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from chatforge.engine import Completion, ContextLengthError, Engine, SamplingParams
from chatforge.errors import RunDirError
from chatforge.model.checkpoint import LATEST, load_model
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_prompt

# Newest first: chat with the most aligned model the run has.
CHECKPOINT_ORDER = ("rlhf", "dpo", "ppo", "sft", "pretrain")
MIN_REPLY_TOKENS = 32  # room kept for the reply when old turns are dropped


def find_checkpoint(run_dir: Path, stage: str | None = None) -> tuple[Path, str]:
    """The checkpoint directory to chat with (`stage`, or the newest complete one the run
    has) and a note naming any newer stage passed over because it has no complete save yet."""
    root = Path(run_dir) / "checkpoints"
    names = [stage] if stage else list(CHECKPOINT_ORDER)
    skipped = []
    for name in names:
        if (root / name / LATEST).is_file() or (root / name / "model.json").is_file():
            note = f"checkpoints/{', '.join(skipped)} has no complete save yet" if skipped else ""
            return root / name, note
        if (root / name).is_dir():
            skipped.append(name)
    wanted = f"checkpoints/{stage}" if stage else "any of checkpoints/{" + ",".join(CHECKPOINT_ORDER) + "}"
    raise RunDirError(f"{run_dir}: no complete model at {wanted} (train one with `chatforge run`)")


def load_chat(run_dir: Path, stage: str | None = None, device: str = "cpu") -> tuple[Engine, Tokenizer, str]:
    """Engine and tokenizer of a run directory, and which checkpoint answers (with the reason
    when it is not the newest stage's)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    ckpt, note = find_checkpoint(run_dir, stage)
    tok = load_tokenizer(run_dir / "tokenizer")
    model = load_model(ckpt, torch.device(device)).eval()
    return Engine(model, tok), tok, ckpt.name + (f" ({note})" if note else "")


@dataclass
class ChatSession:
    """History plus sampling settings; `reply` appends the user turn and the answer."""

    engine: Engine
    tok: Tokenizer
    params: SamplingParams
    system: str = ""
    history: list[dict] = field(default_factory=list)
    dropped_turns: int = 0

    def messages(self) -> list[dict]:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + self.history

    def _fit_prompt(self) -> list[int]:
        """Prompt ids, dropping the oldest exchanges until a reply has room."""
        limit = self.engine.context_length - min(MIN_REPLY_TOKENS, self.params.max_new_tokens)
        while True:
            ids = render_prompt(self.tok, self.messages())
            if len(ids) <= limit or len(self.history) <= 1:
                break
            self.history = self.history[2:]  # one user + assistant exchange
            self.dropped_turns += 1
        if len(ids) >= self.engine.context_length:
            self.history = self.history[:-1]
            raise ContextLengthError(
                f"the message needs {len(ids)} tokens in the chat template (system prompt included), "
                f"but the model's context length is {self.engine.context_length}: send something shorter"
            )
        return ids

    def reply(self, text: str, on_text: Callable[[str], None] | None = None,
              on_tool: Callable[[str, str], None] | None = None) -> Completion:
        """Answer `text`; tool calls the engine runs are kept in the history, so the model sees
        its own calls and their results on the next turn as it did in training."""
        self.history.append({"role": "user", "content": text})
        prompt = self._fit_prompt()
        comp = self.engine.generate(
            [prompt], self.params, on_text=(lambda _row, delta: on_text(delta)) if on_text else None,
            on_tool=(lambda _row, code, out: on_tool(code, out)) if on_tool else None,
        )[0]
        self.history.append({"role": "assistant", "content": comp.content()})
        return comp

    def reset(self) -> None:
        self.history.clear()


def finish_note(comp: Completion, session: ChatSession) -> str:
    """A one-line note when a reply was cut short, else ''."""
    if comp.finish_reason == "length":
        return f"[reply cut at the {session.params.max_new_tokens}-token limit (--max-tokens)]"
    if comp.finish_reason == "context":
        return (f"[reply cut: the conversation reached the model's context length of "
                f"{session.engine.context_length} tokens; /reset to start over]")
    return ""


HELP = "commands: /reset (forget the conversation), /system TEXT, /temp X, /help, /quit"


def interactive(session: ChatSession, stage: str, read: Callable[[str], str] = input,
                out=sys.stdout, err=sys.stderr) -> None:
    """The read-reply loop; ends on /quit, EOF or Ctrl-C."""
    if read is input:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    print(f"chatting with the {stage} model ({session.engine.context_length}-token context). {HELP}", file=err)
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=err)
            return
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            if cmd in ("/quit", "/exit"):
                return
            if cmd == "/reset":
                session.reset()
                print("[conversation reset]", file=err)
            elif cmd == "/system":
                session.system = arg.strip()
                session.reset()
                print(f"[system prompt {'set' if session.system else 'cleared'}; conversation reset]", file=err)
            elif cmd == "/temp":
                try:
                    value = float(arg)
                    if not 0 <= value < float("inf"):  # NaN fails this too
                        raise ValueError
                except ValueError:
                    print(f"[/temp needs a number >= 0, got {arg!r}]", file=err)
                    continue
                session.params = replace(session.params, temperature=value)
                print(f"[temperature {value}]", file=err)
            elif cmd == "/help":
                print(HELP, file=err)
            else:
                print(f"[unknown command {cmd}; {HELP}]", file=err)
            continue
        out.write("bot> ")
        out.flush()
        try:
            before = session.dropped_turns
            comp = session.reply(line, on_text=lambda d: (out.write(d), out.flush()),
                                 on_tool=lambda code, result: (out.write(f"[{code} -> {result}] "), out.flush()))
        except ContextLengthError as exc:
            print(f"[{exc}]", file=err)
            continue
        except KeyboardInterrupt:
            session.history = session.history[:-1]
            print("\n[interrupted]", file=err)
            continue
        out.write("\n")
        out.flush()
        if session.dropped_turns > before:
            print(f"[dropped the oldest {session.dropped_turns - before} exchange(s) to fit the context]", file=err)
        note = finish_note(comp, session)
        if note:
            print(note, file=err)
