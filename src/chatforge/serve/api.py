"""`chatforge serve`: an OpenAI-compatible API and a web chat over one continuous batch.

Routes: POST /v1/chat/completions and /v1/completions (streamed as server-sent events ending
in `data: [DONE]`, or whole), GET /v1/models, GET /health, the chat page at / and its JSON API
under /api (conversations kept in SQLite in the run directory, see `store`). Every request's
sequences go to one `Scheduler`, so concurrent requests share decode steps.

Errors have OpenAI's shape, {"error": {"message", "type", "param", "code"}}: 400 malformed JSON
or a bad value (a prompt longer than the context included), 401 a missing or wrong API key
(compared in constant time), 404 an unknown model or route, 413 a body over the size limit,
422 a field of the wrong type, 429 the queue is full. None of them touch the running batch,
and a client that goes away mid-answer has its sequences cancelled at once.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Literal

import torch
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatforge.engine import Completion, ContextLengthError
from chatforge.errors import ConfigError, InputError, RunDirError
from chatforge.model.checkpoint import load_model, resolve_checkpoint
from chatforge.model.gpt import GPT
from chatforge.model.hf import tokenizer_beside
from chatforge.serve.chat_cli import load_chat
from chatforge.serve.scheduler import Job, QueueFull, Scheduler, Token, sampling
from chatforge.serve.store import NotFound, Store
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import check_messages, render_prompt

WEB = files("chatforge.serve") / "web"
WEB_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
MIN_REPLY_TOKENS = 32  # the web chat drops old turns until a reply has this much room
# The page runs only its own script and style: injected markup could not run even if shown.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'"


class ApiError(Exception):
    """An OpenAI-style error answer."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


# -- request bodies -------------------------------------------------------------------------

class _Body(BaseModel):
    # Strict: "1" is not a number and 1 is not a string; unknown fields are ignored (as vLLM).
    model_config = ConfigDict(strict=True, extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class _Sampling(_Body):
    model: str
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = Field(None, max_length=4)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False  # vLLM's extension: run to max_tokens (benchmarks want fixed lengths)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5)
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for /v1/completions


class NewConversation(_Body):
    title: str = Field("New chat", max_length=1000)


class Rename(_Body):
    title: str = Field(max_length=1000)


class Reply(_Body):
    content: str = Field(min_length=1)
    system: str = ""
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(256, ge=1)


# -- bridging the scheduler thread to the event loop ----------------------------------------

@dataclass
class _Choice:
    index: int
    tokens: list[Token] = field(default_factory=list)
    completion: Completion | None = None
    error: str = ""


class _Run:
    """The jobs of one request and the queue their events arrive on (from the scheduler thread)."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.jobs: list[Job] = []
        self.choices: list[_Choice] = []

    def _post(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            pass

    def submit(self, prompt: list[int], params, top_logprobs: int = 0) -> None:
        """Queue one sequence; on failure the request's other sequences are cancelled."""
        i = len(self.choices)
        self.choices.append(_Choice(i))
        job = Job(prompt, params, on_token=lambda t: self._post((i, "token", t)),
                  on_done=lambda c: self._post((i, "done", c)), on_error=lambda m: self._post((i, "error", m)),
                  top_logprobs=top_logprobs)
        try:
            self.scheduler.submit(job)
        except QueueFull as exc:
            self.cancel()
            raise ApiError(429, str(exc), code="queue_full", type="rate_limit_error") from None
        except ContextLengthError as exc:
            self.cancel()
            raise ApiError(400, str(exc), param="messages", code="context_length_exceeded") from None
        self.jobs.append(job)

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()

    async def events(self) -> AsyncIterator[tuple[_Choice, str, object]]:
        """(choice, kind, payload) until every sequence has finished or failed."""
        left = len(self.choices)
        while left:
            i, kind, payload = await self.queue.get()
            choice = self.choices[i]
            if kind == "token":
                choice.tokens.append(payload)
            elif kind == "done":
                choice.completion, left = payload, left - 1
            else:
                choice.error, left = payload, left - 1
            yield choice, kind, payload


class _EventStream(StreamingResponse):
    """Server-sent events whose `on_close` runs however the response ends: finished, failed,
    or the client gone (even before the first byte, when the body is never iterated)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def _finish(comp: Completion) -> str:
    return "stop" if comp.finish_reason == "stop" else "length"  # "context" is a length limit


def _sse(data: object) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


# -- the app --------------------------------------------------------------------------------

def create_app(scheduler: Scheduler, tok: Tokenizer, model_name: str, store: Store | None = None,
               api_key: str | None = None, max_body: int = 1 << 20, max_tokens: int | None = None) -> FastAPI:
    """The server over a running scheduler. `max_tokens` caps any one reply (default: the
    context length); `max_body` caps a request body in bytes (413 above it)."""
    ctx = scheduler.context_length
    limit = min(max_tokens or ctx, ctx)
    created = int(time.time())
    app = FastAPI(title="chatforge", docs_url=None, redoc_url=None, openapi_url=None)

    def auth(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "missing or incorrect API key (send Authorization: Bearer KEY)",
                           code="invalid_api_key")

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc: RequestValidationError):
        return _invalid(exc.errors()).response()

    async def read_json(request: Request) -> object:
        """The JSON body, at most `max_body` bytes (413), NaN and Infinity refused (400)."""
        too_big = ApiError(413, f"the request body is over the {max_body}-byte limit", code="request_too_large")
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > max_body:
            raise too_big
        data, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > max_body:
                raise too_big
            data.append(chunk)
        try:
            return json.loads(b"".join(data), parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None

    async def body_of(request: Request, model: type[_Body]):
        raw = await read_json(request)
        if not isinstance(raw, dict):
            raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise _invalid(exc.errors()) from None

    def check_model(name: str) -> None:
        if name != model_name:
            raise ApiError(404, f"model {name!r} does not exist; this server serves {model_name!r}",
                           param="model", code="model_not_found")

    def params_for(req: _Sampling, n_prompt: int, index: int, wanted: int | None, logprobs: bool = False):
        if wanted is not None and wanted > limit:
            raise ApiError(400, f"max_tokens={wanted} is over this server's limit of {limit}", param="max_tokens")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        seed = req.seed + index if req.seed is not None else None
        try:
            return sampling(min(wanted or limit, max(1, ctx - n_prompt)), req.temperature, req.top_p, seed,
                            stop=stop, logprobs=logprobs, stop_ids=() if req.ignore_eos else None)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(auth)])

    @v1.get("/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "chatforge", "context_length": ctx}]}

    @v1.post("/chat/completions")
    async def chat_completions(request: Request):
        req: ChatRequest = await body_of(request, ChatRequest)
        check_model(req.model)
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        why = check_messages(messages)
        if why is not None:
            raise ApiError(400, f"messages: {why}", param="messages")
        prompt = render_prompt(tok, messages)
        wanted = req.max_completion_tokens or req.max_tokens
        top = req.top_logprobs or 0
        run = _Run(scheduler)
        for i in range(req.n):
            run.submit(prompt, params_for(req, len(prompt), i, wanted, req.logprobs or top > 0), top)
        rid = "chatcmpl-" + secrets.token_hex(12)
        shape = _ChatShape(tok, rid, model_name, req.logprobs or top > 0)
        return await _answer(request, run, req, shape, [len(prompt)])

    @v1.post("/completions")
    async def completions(request: Request):
        req: CompletionRequest = await body_of(request, CompletionRequest)
        check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise ApiError(400, "prompt: give a string or a non-empty list of strings", param="prompt")
        run = _Run(scheduler)
        ids_list = [[tok.bos_id] + tok.encode(p) for p in prompts]
        stop_ids = (tok.bos_id, tok.eot_id)  # a document ends where the next one would begin
        for ids in ids_list:
            for i in range(req.n):
                p = params_for(req, len(ids), i, req.max_tokens, req.logprobs is not None)
                if not req.ignore_eos:
                    p.stop_ids = stop_ids
                run.submit(ids, p, req.logprobs or 0)
        rid = "cmpl-" + secrets.token_hex(12)
        shape = _CompletionShape(tok, rid, model_name, req.logprobs is not None)
        return await _answer(request, run, req, shape, [len(ids) for ids in ids_list])

    app.include_router(v1)

    @app.get("/health")
    async def health():
        running, waiting = scheduler.load()
        return {"status": "ok", "model": model_name, "running": running, "waiting": waiting}

    if store is not None:
        app.include_router(_chat_routes(store, scheduler, tok, read_json, body_of, auth, limit))

    @app.get("/")
    async def index():
        return FileResponse(str(WEB / "index.html"), media_type="text/html",
                            headers={"Content-Security-Policy": CSP})

    @app.get("/static/{name}")
    async def static(name: str):
        if name not in WEB_FILES:
            raise ApiError(404, f"no such file: {name}", code="not_found")
        return FileResponse(str(WEB / name), media_type=WEB_FILES[name])

    return app


_UNION_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "TextPart"}


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _invalid(errors) -> ApiError:
    """422 naming the first bad field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    # A union's errors name the member tried ("str", "list[TextPart]"): not part of the field.
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body" and str(p) not in _UNION_TAGS
                   and "[" not in str(p))
    return ApiError(422, f"{loc or 'body'}: {first.get('msg', 'invalid')}", param=loc or None, code="invalid_value")


async def _answer(request: Request, run: _Run, req: _Sampling, shape, prompt_tokens: list[int]):
    """The whole answer, or a stream of it; the run's jobs are cancelled if the client leaves."""
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    if req.stream:
        async def stream() -> AsyncIterator[str]:
            for c in run.choices:
                first = shape.first_chunk(c.index)
                if first is not None:
                    yield _sse(shape.chunk([first], include_usage))
            out = []  # events already waiting go out in one write: fewer sends under load
            async for choice, kind, payload in run.events():
                if kind == "token":
                    if payload.text or shape.logprobs:
                        out.append(_sse(shape.chunk([shape.delta(choice.index, [payload])], include_usage)))
                elif kind == "done":
                    out.append(_sse(shape.chunk([shape.end(choice.index, _finish(payload))], include_usage)))
                else:
                    out.append(_sse({"error": {"message": payload, "type": "server_error", "param": None,
                                               "code": "generation_failed"}}))
                if out and run.queue.empty():
                    yield "".join(out)
                    out = []
            if out:
                yield "".join(out)
            if include_usage:
                yield _sse({**shape.chunk([], False), "usage": _usage(run, prompt_tokens)})
            yield "data: [DONE]\n\n"

        return _EventStream(stream(), on_close=run.cancel)
    async def collect() -> None:
        async for _ in run.events():
            pass

    task = asyncio.ensure_future(collect())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                return Response(status_code=499)  # nobody to answer; the jobs are cancelled below
    finally:
        run.cancel()
    errors = [c.error for c in run.choices if c.error]
    if errors:
        raise ApiError(500, errors[0], code="generation_failed", type="server_error")
    return shape.whole(run.choices, _usage(run, prompt_tokens))


def _usage(run: _Run, prompt_tokens: list[int]) -> dict:
    """Token counts; a prompt shared by n choices counts once, as OpenAI counts it."""
    prompt = sum(prompt_tokens)
    completion = sum(len(c.completion.tokens) for c in run.choices if c.completion is not None)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Shape:
    """How one endpoint's answers and chunks look (chat and text completions differ)."""

    object = ""
    chunk_object = ""

    def __init__(self, tok: Tokenizer, rid: str, model: str, logprobs: bool):
        self.tok, self.rid, self.model, self.logprobs = tok, rid, model, logprobs
        self.created = int(time.time())

    def piece(self, token_id: int) -> str:
        return self.tok.decode_bytes([token_id]).decode("utf-8", errors="replace")

    def chunk(self, choices: list[dict], include_usage: bool) -> dict:
        out = {"id": self.rid, "object": self.chunk_object,
               "created": self.created, "model": self.model, "choices": choices}
        if include_usage:
            out["usage"] = None
        return out


class _ChatShape(_Shape):
    object, chunk_object = "chat.completion", "chat.completion.chunk"

    def _entries(self, tokens: list[Token]) -> dict | None:
        if not self.logprobs:
            return None
        content = []
        for t in tokens:
            top = [{"token": self.piece(i), "logprob": lp, "bytes": list(self.tok.decode_bytes([i]))}
                   for i, lp in t.top or []]
            content.append({"token": self.piece(t.id), "logprob": t.logprob,
                            "bytes": list(self.tok.decode_bytes([t.id])), "top_logprobs": top})
        return {"content": content}

    def first_chunk(self, index: int) -> dict:
        return {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                "finish_reason": None}

    def delta(self, index: int, tokens: list[Token]) -> dict:
        return {"index": index, "delta": {"content": "".join(t.text for t in tokens)},
                "logprobs": self._entries(tokens), "finish_reason": None}

    def end(self, index: int, reason: str) -> dict:
        return {"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}

    def whole(self, choices: list[_Choice], usage: dict) -> dict:
        return {"id": self.rid, "object": self.object, "created": self.created, "model": self.model,
                "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.completion.text},
                             "logprobs": self._entries(c.tokens), "finish_reason": _finish(c.completion)}
                            for c in choices],
                "usage": usage}


class _CompletionShape(_Shape):
    object = chunk_object = "text_completion"

    def _entries(self, tokens: list[Token], offset: int = 0) -> dict | None:
        if not self.logprobs:
            return None
        pieces = [self.piece(t.id) for t in tokens]
        offsets = []
        for p in pieces:
            offsets.append(offset)
            offset += len(p)
        return {"tokens": pieces, "token_logprobs": [t.logprob for t in tokens],
                "top_logprobs": [{self.piece(i): lp for i, lp in t.top} if t.top else None for t in tokens],
                "text_offset": offsets}

    def first_chunk(self, index: int) -> None:
        return None

    def delta(self, index: int, tokens: list[Token]) -> dict:
        return {"index": index, "text": "".join(t.text for t in tokens), "logprobs": self._entries(tokens),
                "finish_reason": None}

    def end(self, index: int, reason: str) -> dict:
        return {"index": index, "text": "", "logprobs": None, "finish_reason": reason}

    def whole(self, choices: list[_Choice], usage: dict) -> dict:
        return {"id": self.rid, "object": self.object, "created": self.created, "model": self.model,
                "choices": [{"index": c.index, "text": c.completion.text, "logprobs": self._entries(c.tokens),
                             "finish_reason": _finish(c.completion)} for c in choices],
                "usage": usage}


def _chat_routes(store: Store, scheduler: Scheduler, tok: Tokenizer, read_json, body_of, auth,
                 limit: int) -> APIRouter:
    """The web chat's JSON API: conversations on the server, replies streamed as SSE."""
    api = APIRouter(prefix="/api", dependencies=[Depends(auth)])
    ctx = scheduler.context_length

    def found(fn, *args):
        try:
            return fn(*args)
        except NotFound:
            raise ApiError(404, f"no conversation {args[0]!r}", param="id", code="not_found") from None

    @api.get("/info")
    async def info():
        return {"context_length": ctx, "max_tokens": limit}

    @api.get("/conversations")
    async def listing():
        return {"conversations": store.list()}

    @api.post("/conversations")
    async def new(request: Request):
        body: NewConversation = await body_of(request, NewConversation)
        return store.create(body.title)

    @api.post("/conversations/import")
    async def import_(request: Request):
        raw = await read_json(request)
        try:
            made = store.import_(raw)
        except InputError as exc:
            raise ApiError(400, str(exc), code="invalid_import") from None
        return {"conversations": [{"id": c["id"], "title": c["title"]} for c in made]}

    @api.get("/conversations/{cid}")
    async def get(cid: str):
        return found(store.get, cid)

    @api.patch("/conversations/{cid}")
    async def rename(cid: str, request: Request):
        body: Rename = await body_of(request, Rename)
        return found(store.rename, cid, body.title)

    @api.delete("/conversations/{cid}")
    async def delete(cid: str):
        found(store.delete, cid)
        return {"deleted": cid}

    @api.get("/conversations/{cid}/export")
    async def export(cid: str):
        data = found(store.export, cid)
        name = "".join(ch if ch.isalnum() else "-" for ch in data["title"])[:60] or "chat"
        return JSONResponse(data, headers={"Content-Disposition": f'attachment; filename="{name}.json"'})

    @api.post("/conversations/{cid}/reply")
    async def reply(cid: str, request: Request):
        body: Reply = await body_of(request, Reply)
        conv = found(store.get, cid)
        history = conv["messages"] + [{"role": "user", "content": body.content}]
        system = [{"role": "system", "content": body.system}] if body.system else []
        why = check_messages(system + history)
        if why is not None:
            raise ApiError(400, f"conversation {cid}: {why}")
        max_new = min(body.max_tokens, limit)
        room = ctx - min(MIN_REPLY_TOKENS, max_new)
        prompt = render_prompt(tok, system + history)
        while len(prompt) > room and len(history) > 1:  # drop the oldest exchange
            history = history[2:]
            prompt = render_prompt(tok, system + history)
        if len(prompt) >= ctx:
            raise ApiError(400, f"the message needs {len(prompt)} tokens but the model's context is {ctx}: "
                           "send something shorter", code="context_length_exceeded")
        params = sampling(min(max_new, ctx - len(prompt)), body.temperature, 1.0, None)
        run = _Run(scheduler)
        run.submit(prompt, params)
        store.append(cid, "user", body.content)
        if conv["title"] == "New chat" and not conv["messages"]:
            store.rename(cid, body.content[:48])

        saved = False

        async def stream() -> AsyncIterator[str]:
            nonlocal saved
            async for _choice, kind, payload in run.events():
                if kind == "token" and payload.text:
                    yield _sse({"delta": payload.text})
                elif kind == "done":
                    store.append(cid, "assistant", payload.text)
                    saved = True
                    yield _sse({"finish_reason": _finish(payload), "tokens": len(payload.tokens)})
                elif kind == "error":
                    yield _sse({"error": payload})

        def close() -> None:  # stopped or failed: keep what was sent, so turns still alternate
            run.cancel()
            if not saved:
                store.append(cid, "assistant", "".join(t.text for t in run.choices[0].tokens))

        return _EventStream(stream(), on_close=close)

    return api


def load_served(source: Path, stage: str | None = None, device: str = "cpu") -> tuple[GPT, Tokenizer, str, Path]:
    """Model, tokenizer, model name and chat-database path of a run directory (its newest chat
    checkpoint, or `stage`) or of a checkpoint directory (its run's tokenizer, or its own)."""
    source = Path(source)
    if not source.exists():
        raise RunDirError(f"{source}: no such run or checkpoint directory")
    if (source / "checkpoints").is_dir():
        engine, tok, loaded = load_chat(source, stage, device)
        return engine.model, tok, f"{source.resolve().name}-{loaded.split(' ')[0]}", source / "chat"
    if stage:
        raise RunDirError(f"{source}: --checkpoint names a stage of a run directory, and this is a checkpoint")
    weights = resolve_checkpoint(source)
    tok = load_tokenizer(tokenizer_beside(weights))
    model = load_model(source, torch.device(device)).eval()
    weights = weights.resolve()
    stage_dir = next((p for p in (weights, *weights.parents) if p.parent.name == "checkpoints"), None)
    if stage_dir is None:  # e.g. an import-hf directory: the chats live beside the weights
        return model, tok, weights.name, weights / "chat"
    return model, tok, f"{stage_dir.parent.parent.name}-{stage_dir.name}", stage_dir.parent.parent / "chat"


def serve(source: Path, stage: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None, max_concurrency: int = 32, queue: int = 64, device: str = "cpu",
          max_body: int = 1 << 20, max_tokens: int | None = None) -> None:
    """Load the model and serve it until interrupted."""
    model, tok, name, chat_dir = load_served(source, stage, device)
    scheduler = Scheduler(model, tok, max_batch=max_concurrency, max_queue=queue).start()
    store = Store(chat_dir / "conversations.sqlite")
    try:
        app = create_app(scheduler, tok, name, store, api_key=api_key, max_body=max_body, max_tokens=max_tokens)
        print(f"serving {name!r} at http://{host}:{port}/ (OpenAI API at /v1)", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        scheduler.close()
        store.close()
