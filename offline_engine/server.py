"""The HTTP face of the engine: OpenAI-shaped routes, latency, faults and counters.

Everything a response says is a function of (config, request): the RNG of a chat request is
seeded from the config seed and the SHA-256 of the canonical JSON of model, messages,
max_tokens and response_format, so a repeated request gets the same text whether streamed or
not. Only `created` (wall clock) and the fault schedule (a per-process request counter) vary.
`/v1/engine/stats` is simulator-only: real servers have no such route.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from offline_engine.code import code_reply
from offline_engine.config import FAULT_KINDS, EngineConfig
from offline_engine.embeddings import embed, to_base64
from offline_engine.profiles import (
    PROFILES,
    Profile,
    Rejection,
    overflow_error,
    request_schema,
    schema_labels,
    structured_kind,
)
from offline_engine.prose import Completion, count_tokens, fit, short_reply, write_prose
from offline_engine.reviewer import find_drafts, flawed, json_reply, wrapped

HTTP_FAULTS = {"429": 429, "500": 500, "503": 503}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_PIECE_RE = re.compile(r"\s*\S+")


class RequestError(Exception):
    """A client error, reported as HTTP 400 in OpenAI's error format."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class EngineStats:
    started_at: float = field(default_factory=time.time)
    served: int = 0
    requests: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    finish_reasons: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    profile: Counter = field(default_factory=Counter)  # what the profile refused, overflowed or truncated

    def as_json(self, config: EngineConfig) -> dict[str, Any]:
        return {
            "simulator_only": True,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "requests": {"total": self.served, **{k: self.requests[k] for k in ("chat.completions", "embeddings")}},
            "faults": {"total": sum(self.faults.values()), **{k: self.faults[k] for k in FAULT_KINDS}},
            "finish_reasons": {k: self.finish_reasons[k] for k in ("stop", "length")},
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "profile": {k: self.profile[k] for k in ("structured_refused", "context_overflows", "silent_truncations",
                                                     "embeddings_refused")},
            "config": config.public_dict(),
        }


def error_response(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _text_of(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise RequestError("message content must be a string, a list of parts or null", "messages")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise RequestError("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    return body


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"'{name}' must be a positive integer, got {value!r}", name)
    return value


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    response_format: dict[str, Any] | None
    stream: bool
    include_usage: bool
    seed: int | None = None  # the request's own seed (OpenAI's `seed`): another seed, another answer
    extras: dict[str, Any] = field(default_factory=dict)  # vLLM's `guided_json`, Ollama's `format`

    @property
    def json_mode(self) -> bool:
        return bool(self.response_format) and self.response_format.get("type") in ("json_object", "json_schema")

    @property
    def structured_kind(self) -> str | None:
        return structured_kind(self.response_format, self.extras)

    def system(self) -> str:
        return "\n".join(_text_of(m.get("content")) for m in self.messages if m["role"] in ("system", "developer"))

    def last_user(self) -> str:
        users = [m for m in self.messages if m["role"] == "user"]
        return _text_of(users[-1].get("content")) if users else ""

    def prompt_tokens(self) -> int:
        return sum(count_tokens(_text_of(m.get("content"))) for m in self.messages)

    def digest(self) -> str:
        identity = {"model": self.model, "messages": self.messages, "max_tokens": self.max_tokens,
                    "response_format": self.response_format}
        if self.seed is not None:  # absent, the digest is what it always was
            identity["seed"] = self.seed
        if self.extras:
            identity["extras"] = self.extras
        canonical = json.dumps(
            identity,
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ChatRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty array of messages", "messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in _ROLES:
                raise RequestError(f"messages[{i}] must be an object with a valid 'role'", f"messages[{i}]")
            _text_of(m.get("content"))
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("'model' must be a non-empty string", "model")
        max_tokens = _positive_int(body, "max_tokens") or _positive_int(body, "max_completion_tokens")
        rf = body.get("response_format")
        if rf is not None and (not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema")):
            raise RequestError("'response_format.type' must be one of text, json_object, json_schema",
                               "response_format")
        n = body.get("n", 1)
        if n not in (1, None):
            raise RequestError("the offline engine supports only n=1", "n")
        stream = body.get("stream") or False
        if not isinstance(stream, bool):
            raise RequestError("'stream' must be a boolean", "stream")
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise RequestError("'stream_options' must be an object", "stream_options")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise RequestError(f"'seed' must be an integer, got {seed!r}", "seed")
        extras = {k: body[k] for k in ("guided_json", "format") if body.get(k) is not None}
        return cls(model, messages, max_tokens, rf, stream, bool(options.get("include_usage")), seed, extras)


class Engine:
    """Per-process state of one served engine: its config, its fault counter and its stats."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.profile = PROFILES[config.profile]
        self.stats = EngineStats()
        self._counter = 0
        self.serial = asyncio.Lock() if self.profile.serial else contextlib.nullcontext()

    def draw_fault(self) -> str | None:
        """The fault for the next request, from (seed, request number); None when it is served."""
        self._counter += 1
        cfg = self.config
        if cfg.fault_rate <= 0 or not cfg.fault_kinds:
            return None
        rng = random.Random(f"{cfg.seed}:fault:{self._counter}")  # noqa: S311 - simulation
        if rng.random() >= cfg.fault_rate:
            return None
        return rng.choice(cfg.fault_kinds)

    def authorized(self, request: Request) -> bool:
        if self.config.api_key is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.config.api_key)

    def complete(self, req: ChatRequest) -> Completion:
        cfg = self.config
        seed_material = f"{cfg.seed}:{req.digest()}".encode()
        rng = random.Random(hashlib.sha256(seed_material).digest())  # noqa: S311 - simulation
        system, user = req.system(), self.seen_prompt(req)
        max_tokens = self.completion_limit(req)
        reviewing = req.json_mode or req.structured_kind is not None or bool(find_drafts(user))  # in any vote mode
        code = code_reply(cfg.seed, system, user, reviewing, req.seed)  # CodeRepair: offline_engine/code.py
        if code is not None:
            return fit(code, max_tokens)
        treatment = self.profile.treatment(req.structured_kind)
        if treatment == "constrained":
            labels = schema_labels(request_schema(req.response_format, req.extras))
            return fit(json_reply(cfg, system, user, fallback=short_reply(rng, system), labels=labels), max_tokens)
        if treatment == "json" or find_drafts(user):  # a model follows the prompt's ballot instructions
            text = json_reply(cfg, system, user, fallback=short_reply(rng, system))
            if find_drafts(user) and rng.random() < self.profile.flaw_rate:
                text = flawed(text, rng)
            if treatment != "json" and rng.random() < self.profile.wrap_rate:
                text = wrapped(text, rng)
            return fit(text, max_tokens)
        return write_prose(rng, system, user, max_tokens, cfg.long_draft_rate)

    def seen_prompt(self, req: ChatRequest) -> str:
        """The last user message as the model sees it: a profile that truncates silently (Ollama) drops
        the beginning of the prompt that does not fit its context."""
        ctx, prompt = self.profile.context_tokens, req.prompt_tokens()
        user = req.last_user()
        if self.profile.overflow != "truncate" or ctx is None or prompt <= ctx:
            return user
        return " ".join(user.split()[prompt - ctx + 1:])

    def completion_limit(self, req: ChatRequest) -> int | None:
        """`max_tokens`, or less where the context ends first (the completion stops with "length")."""
        ctx = self.profile.context_tokens
        if ctx is None or self.profile.overflow in ("strict", "truncate"):  # Ollama shifts its context and goes on
            return req.max_tokens
        room = max(1, ctx - min(req.prompt_tokens(), ctx - 1))
        return min(req.max_tokens, room) if req.max_tokens else room

    def reported_prompt_tokens(self, req: ChatRequest) -> int:
        ctx, prompt = self.profile.context_tokens, req.prompt_tokens()
        return min(prompt, ctx) if self.profile.overflow == "truncate" and ctx is not None else prompt

    async def delay(self, tokens: int) -> None:
        total = self.config.ttft_s + (tokens / self.config.tokens_per_s if self.config.tokens_per_s > 0 else 0.0)
        if total > 0:
            await asyncio.sleep(total)


def _unauthorized() -> JSONResponse:
    return error_response(401, "Incorrect API key provided. The offline engine expects "
                          "'Authorization: Bearer <key>' with its configured key.", code="invalid_api_key")


async def _fault_response(engine: Engine, fault: str | None) -> Response | None:
    """An error response for HTTP-level faults; stalls for "timeout" and then lets it through."""
    if fault in HTTP_FAULTS:
        engine.stats.faults[fault] += 1
        status = HTTP_FAULTS[fault]
        if status == 429:
            return error_response(429, "Rate limit reached (simulated by the offline engine).",
                                  type_="requests", code="rate_limit_exceeded", headers={"Retry-After": "1"})
        return error_response(status, f"Simulated server error {status} from the offline engine.",
                              type_="server_error")
    if fault == "timeout":
        engine.stats.faults[fault] += 1
        await asyncio.sleep(engine.config.stall_s)
    return None


def build_app(config: EngineConfig) -> Starlette:
    """A Starlette app serving the OpenAI-compatible routes for `config`."""
    engine = Engine(config)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": config.model, "seed": config.seed, "pid": os.getpid(),
                             "fingerprint": config.fingerprint()})

    async def models(request: Request) -> JSONResponse:
        if not engine.authorized(request):
            return _unauthorized()
        return JSONResponse({"object": "list", "data": [_model_card(config.model, engine.profile)]})

    async def model(request: Request) -> JSONResponse:
        if not engine.authorized(request):
            return _unauthorized()
        return JSONResponse(_model_card(request.path_params["model"], engine.profile))

    async def props(request: Request) -> JSONResponse:
        """llama.cpp's server: its context size, per slot."""
        if engine.profile.context_endpoint != "props":
            return error_response(404, "File Not Found", type_="not_found_error")
        return JSONResponse({"default_generation_settings": {"n_ctx": engine.profile.context_tokens},
                             "total_slots": 1, "model_path": config.model})

    async def ollama_show(request: Request) -> JSONResponse:
        """Ollama's model details: the trained context in model_info; the context it runs with (num_ctx,
        2048 unless a Modelfile sets it) is not said."""
        if engine.profile.context_endpoint != "ollama_show":
            return error_response(404, "404 page not found", type_="not_found_error")
        return JSONResponse({"modelfile": f"FROM {config.model}", "parameters": "stop \"<|eot_id|>\"",
                             "details": {"format": "gguf", "family": "llama"},
                             "model_info": {"general.architecture": "llama", "llama.context_length": 131072}})

    async def stats(request: Request) -> JSONResponse:
        if not engine.authorized(request):
            return _unauthorized()
        return JSONResponse(engine.stats.as_json(config))

    async def chat(request: Request) -> Response:
        if not engine.authorized(request):
            return _unauthorized()
        try:
            req = ChatRequest.parse(await _json_body(request))
        except RequestError as exc:
            return error_response(400, str(exc), param=exc.param)
        if req.json_mode and not config.json_mode:
            return error_response(400, f"response_format of type {req.response_format['type']!r} is not supported "
                                  "by this server (the offline engine runs with --no-json-mode)",
                                  param="response_format")
        refused = engine.profile.treatment(req.structured_kind)
        if isinstance(refused, Rejection):
            engine.stats.profile["structured_refused"] += 1
            return error_response(refused.status, refused.message, type_=refused.type_, param="response_format")
        overflow = overflow_error(engine.profile, req.prompt_tokens(), req.max_tokens)
        if overflow is not None:
            engine.stats.profile["context_overflows"] += 1
            return error_response(overflow.status, overflow.message, param="messages", code="context_length_exceeded")
        if engine.profile.overflow == "truncate" and engine.reported_prompt_tokens(req) < req.prompt_tokens():
            engine.stats.profile["silent_truncations"] += 1
        async with engine.serial:
            return await _answer(engine, req)

    async def _answer(engine: Engine, req: ChatRequest) -> Response:
        engine.stats.served += 1
        engine.stats.requests["chat.completions"] += 1
        fault = engine.draw_fault()
        failed = await _fault_response(engine, fault)
        if failed is not None:
            return failed
        done = engine.complete(req)
        content, finish = done.text, done.finish_reason
        if fault == "empty":
            engine.stats.faults[fault] += 1
            content, finish = "", "stop"
        elif fault == "malformed_json" and req.json_mode:
            engine.stats.faults[fault] += 1
            content = content[: max(1, len(content) // 2)]
        prompt_tokens, completion_tokens = engine.reported_prompt_tokens(req), count_tokens(content)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        engine.stats.prompt_tokens += prompt_tokens
        engine.stats.completion_tokens += completion_tokens
        engine.stats.finish_reasons[finish] += 1
        head = {"id": "chatcmpl-" + hashlib.sha256(f"{config.seed}:{req.digest()}".encode()).hexdigest()[:29],
                "created": int(time.time()), "model": req.model,
                "system_fingerprint": "fp_offline_" + config.fingerprint()[:10]}
        if req.stream:
            await asyncio.sleep(config.ttft_s)
            return StreamingResponse(_sse(engine, head, content, finish, usage, req.include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        await engine.delay(completion_tokens)
        message = {"role": "assistant", "content": content, "refusal": None}
        return JSONResponse({**head, "object": "chat.completion",
                             "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                             "usage": usage})

    async def embeddings(request: Request) -> Response:
        if not engine.authorized(request):
            return _unauthorized()
        try:
            body = await _json_body(request)
            texts = _embedding_inputs(body.get("input"))
            dim = _positive_int(body, "dimensions") or config.embedding_dim
            if dim > 65536:
                raise RequestError("'dimensions' must be at most 65536", "dimensions")
            fmt = body.get("encoding_format") or "float"
            if fmt not in ("float", "base64"):
                raise RequestError("'encoding_format' must be float or base64", "encoding_format")
            model_name = body.get("model") or config.model
        except RequestError as exc:
            return error_response(400, str(exc), param=exc.param)
        refused = engine.profile.embeddings
        if refused is not None:
            engine.stats.profile["embeddings_refused"] += 1
            return error_response(refused.status, refused.message, type_=refused.type_)
        async with engine.serial:
            return await _embed(engine, texts, dim, fmt, model_name)

    async def _embed(engine: Engine, texts: list[str], dim: int, fmt: str, model_name: str) -> Response:
        engine.stats.served += 1
        engine.stats.requests["embeddings"] += 1
        fault = engine.draw_fault()
        failed = await _fault_response(engine, fault if fault in (*HTTP_FAULTS, "timeout") else None)
        if failed is not None:
            return failed
        await engine.delay(0)
        data = []
        for i, text in enumerate(texts):
            vec = embed(text, dim)
            data.append({"object": "embedding", "index": i, "embedding": vec if fmt == "float" else to_base64(vec)})
        tokens = sum(count_tokens(t) for t in texts)
        engine.stats.prompt_tokens += tokens
        return JSONResponse({"object": "list", "data": data, "model": model_name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error_response(status, f"{request.method} {request.url.path}: {getattr(exc, 'detail', exc)}")

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/engine/stats", stats, methods=["GET"]),
        Route("/props", props, methods=["GET"]),
        Route("/api/show", ollama_show, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: http_error, 405: http_error})
    app.state.engine = engine
    return app


def _model_card(model_id: str, profile: Profile) -> dict[str, Any]:
    card = {"id": model_id, "object": "model", "created": 0, "owned_by": "offline-engine"}
    if profile.context_endpoint == "max_model_len":  # vLLM lists its context with the model
        card["max_model_len"] = profile.context_tokens
    return card


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, int) for v in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(map(str, v)) for v in value]
    raise RequestError("'input' must be a string or a non-empty array of strings", "input")


async def _sse(engine: Engine, head: dict[str, Any], content: str, finish: str, usage: dict[str, int],
               include_usage: bool) -> AsyncIterator[str]:
    """Chunks one token at a time, paced at tokens_per_s, then finish, usage and [DONE]."""

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
        if include_usage:
            chunk.setdefault("usage", None)
        return f"data: {json.dumps(chunk)}\n\n"

    def delta(d: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}]

    pieces = _PIECE_RE.findall(content)
    tail = content[len("".join(pieces)):]
    if tail:
        pieces.append(tail)
    yield event(delta({"role": "assistant", "content": ""}))
    tps = engine.config.tokens_per_s
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, piece in enumerate(pieces, start=1):
        if tps > 0:
            await asyncio.sleep(max(0.0, start + i / tps - loop.time()))
        yield event(delta({"content": piece}))
    yield event(delta({}, finish))
    if include_usage:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"
