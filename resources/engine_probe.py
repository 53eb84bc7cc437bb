"""What an OpenAI-compatible engine can really do, found out once per engine (base URL and model).

Servers differ where the loop depends on them (README, "Engines it runs on"): how they constrain a ballot to
its JSON schema, how large their context is, whether they serve embeddings, how many requests they
run at once. `probe_engine` asks the server a few tiny questions and returns `EngineCapabilities`,
which the LLM resource stores in the fabric (`engine_capabilities`) and uses for every epoch.

Structured output, best first (`VOTE_MODES`): strict `json_schema`; `json_object` with a `schema`
(llama-cpp-python); vLLM's `guided_json`; Ollama's `format`; plain `json_object`; the prompt alone,
parsed tolerantly. A constraining mode is tested with a schema whose only draft id differs from
the one in the prompt: only a server that really holds its output to the schema answers with it,
so a server that silently ignores a field is never taken for one that honours it.

The context window comes from the server's own endpoints (vLLM's `max_model_len` in `/v1/models`,
llama.cpp's `n_ctx` in `/props`, Ollama's `/api/show`), else `DREAM_LLM_CONTEXT_TOKENS`, else from
the error a deliberately oversized prompt gets, else `DEFAULT_CONTEXT_TOKENS`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai

from dream_pipeline.tournament import (
    BallotError,
    BallotItem,
    Presentation,
    ballot_json_schema,
    parse_ballot,
    render_ballot_prompt,
)

VOTE_MODES = ("json_schema", "json_object_schema", "guided_json", "ollama_format", "json_object", "prompt_only")
CONSTRAINED_MODES = frozenset(VOTE_MODES[:4])
DEFAULT_CONTEXT_TOKENS = 2048  # llama.cpp's and Ollama's usual context: a request sized for it fits anywhere
OLLAMA_DEFAULT_NUM_CTX = 2048  # what Ollama runs a model with unless num_ctx is set
OVERFLOW_PROBE_WORDS = 4096  # each word is at least one token, so this is over a 4,096-token context
PARALLEL_PROBE = 4  # requests sent at once to measure concurrency; this many or more means "no limit seen"
NO_LIMIT_OVERLAP = 2.5  # more overlap than this among PARALLEL_PROBE requests: no limit worth applying
PARALLEL_BATCHES = 3  # batches of PARALLEL_PROBE tried while they show a limit; the fastest one counts
MEASURABLE_LATENCY_S = 0.05  # a request faster than this cannot show whether requests overlap
PROBE_MAX_TOKENS = 256
PROBE_TRIES = 3  # a probe request that fails by chance (a fault, a stray reply) is asked again
PROBE_BACKOFF_S = 0.5
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx")
_CONTEXT_IN_ERROR = re.compile(
    r"(?:maximum context length is|context window of|context size|n_ctx[\"':= ]+|context length of)\D{0,20}(\d{3,7})",
    re.IGNORECASE,
)
_ABOUT_FORMAT = re.compile(r"response_format|json_schema|json_object|schema|guided|format|grammar|structured",
                           re.IGNORECASE)


@dataclass(frozen=True)
class EngineCapabilities:
    """What the probe found. `context_tokens` is the window the requests must fit (part of the
    prompt-fitting contract: read it, never the server's endpoints directly)."""

    base_url: str
    model: str
    vote_mode: str
    context_tokens: int
    context_source: str
    embeddings: bool
    embedding_note: str | None = None
    concurrency: int | None = None  # measured requests at once; None: not measurable, or no limit seen
    truncates_silently: bool = False  # Ollama: a prompt past the context loses its beginning without an error
    modes_refused: dict[str, str] = field(default_factory=dict)  # mode -> why it was passed over
    probed_at: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EngineCapabilities:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in known})

    @property
    def served_context(self) -> int | None:
        """The context the server itself states (its endpoints, its refusal of an oversized prompt, Ollama's
        default); None when the figure is a setting, a lower bound or the default."""
        stated = self.context_source.startswith(("/", "Ollama", "the server's answer"))
        return self.context_tokens if stated else None

    def next_mode(self, failed: str) -> str:
        """The mode after `failed` on the ladder; the prompt alone is the last and never refused."""
        later = VOTE_MODES[VOTE_MODES.index(failed) + 1:]
        return next((m for m in later if m not in self.modes_refused), "prompt_only")

    def summary(self) -> str:
        """One line for `dream status`, preflight and the run's metadata."""
        conc = "no limit seen" if self.concurrency is None else f"{self.concurrency} at once"
        emb = "embeddings served" if self.embeddings else "no embeddings (full-text memory)"
        trunc = ", truncates long prompts silently" if self.truncates_silently else ""
        return (f"ballots as {self.vote_mode}; context {self.context_tokens} tokens ({self.context_source}); "
                f"{emb}; {conc}{trunc}")


def structured_fields(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The request fields that ask for `schema` in `mode` (a ballot's response_format or extra body)."""
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "ballot", "schema": schema, "strict": True}}}
    if mode == "json_object_schema":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == "guided_json":
        return {"extra_body": {"guided_json": schema}}
    if mode == "ollama_format":
        return {"extra_body": {"format": schema}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    if mode == "prompt_only":
        return {}
    raise ValueError(f"unknown vote mode {mode!r}; known: {', '.join(VOTE_MODES)}")


def about_format(message: str) -> bool:
    """Whether a server's error is about the structured-output request (not a fault or an overflow)."""
    return bool(_ABOUT_FORMAT.search(message or "")) and not context_in_error(message)


def context_in_error(message: str) -> int | None:
    """The context size a server names when it refuses a prompt that does not fit, if it names one."""
    match = _CONTEXT_IN_ERROR.search(message or "")
    return int(match.group(1)) if match else None


def _error_text(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    else:
        text = str(getattr(exc, "message", exc))
    return " ".join(text.split())[:300]


SHOWN = Presentation("Reviewer", (BallotItem("Anonymous_Archivist_1", "Probe", 0),))
WANTED = Presentation("Reviewer", (BallotItem("Anonymous_Steward_2", "Probe", 0),))  # only in the schema
PROBE_DRAFT = "The furnace burned through the night, and by morning the iron had taken the shape of a bell."


def transient(exc: BaseException) -> bool:
    """A failure worth asking again: no connection, a timeout, a rate limit, a 5xx that is not about the
    request's format (a refusal of the format is an answer, not a fault)."""
    if isinstance(exc, openai.APIConnectionError | openai.RateLimitError):
        return True
    status = getattr(exc, "status_code", None)
    return status is not None and status >= 500 and not about_format(_error_text(exc))


async def _try_mode(client: openai.AsyncOpenAI, model: str, mode: str) -> str | None:
    """None when `mode` works on this server, else why not. A fault (see `transient`) or a reply that
    misses is asked again, up to PROBE_TRIES times: a server that ignores a field misses every time, a
    faulty one only now and then. A refusal of the format is final at once."""
    prompt = render_ballot_prompt(SHOWN, {"Probe": PROBE_DRAFT})
    constrained = mode in CONSTRAINED_MODES
    expected = WANTED if constrained else SHOWN
    why = "not tried"
    for attempt in range(PROBE_TRIES):
        if attempt:
            await asyncio.sleep(PROBE_BACKOFF_S * attempt)
        try:
            response = await client.chat.completions.create(
                model=model, max_tokens=PROBE_MAX_TOKENS, temperature=0,
                messages=[{"role": "user", "content": prompt}],
                **structured_fields(mode, ballot_json_schema(expected.labels())),
            )
        except openai.OpenAIError as exc:
            if transient(exc):
                why = f"{type(exc).__name__}: {_error_text(exc)}"
                continue
            status = getattr(exc, "status_code", None)
            return (f"HTTP {status}: " if status else "") + _error_text(exc)
        reply = (response.choices[0].message.content or "") if response.choices else ""
        try:
            parse_ballot(reply, expected, tolerant=not constrained)
        except BallotError as exc:
            if constrained:
                why = f"accepted, but the reply is not held to the schema ({exc.reason}): {reply[:120]!r}"
                continue
            if exc.reason == "not_json":
                why = f"the reply is not JSON: {reply[:120]!r}"
                continue
        return None
    return why


def _get_json(url: str, api_key: str | None, body: dict | None = None, timeout: float = 10.0) -> dict | None:
    """GET (or POST `body`) a JSON document beside the OpenAI routes; None when there is none."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith(("http://", "https://")):
        return None
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - http(s) only, checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            doc = json.loads(reply.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return doc if isinstance(doc, dict) else None


def _root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


async def _context(client: openai.AsyncOpenAI, base_url: str, api_key: str | None, model: str,
                   configured: int | None) -> tuple[int, str, bool]:
    """(context tokens, where that figure came from, whether the server truncates silently)."""
    try:
        listed = await client.models.list()
        cards = [m for m in listed.data if m.id == model] or list(listed.data)
    except openai.OpenAIError:
        cards = []
    for card in cards[:1]:
        extra = card.model_extra or {}
        for key in _CONTEXT_KEYS:
            if isinstance(extra.get(key), int) and extra[key] > 0:
                return extra[key], f"/v1/models {key}", False
    root = _root(base_url)
    props = await asyncio.to_thread(_get_json, f"{root}/props", api_key)
    if props:
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        if isinstance(n_ctx, int) and n_ctx > 0:
            return n_ctx, "/props n_ctx", False
    show = await asyncio.to_thread(_get_json, f"{root}/api/show", api_key, {"model": model})
    if show and ("model_info" in show or "parameters" in show):
        match = re.search(r"num_ctx\s+(\d+)", str(show.get("parameters") or ""))
        if match:
            return int(match.group(1)), "/api/show num_ctx", True
        return OLLAMA_DEFAULT_NUM_CTX, "Ollama's default num_ctx (/api/show sets none)", True
    if configured:
        return configured, "DREAM_LLM_CONTEXT_TOKENS", False
    for attempt in range(PROBE_TRIES):
        try:
            await client.chat.completions.create(
                model=model, max_tokens=1, temperature=0,
                messages=[{"role": "user", "content": "word " * OVERFLOW_PROBE_WORDS + "\nSay OK."}],
            )
        except openai.OpenAIError as exc:
            named = context_in_error(_error_text(exc))
            if named:
                return named, "the server's answer to an oversized prompt", False
            if not transient(exc):
                break
            await asyncio.sleep(PROBE_BACKOFF_S * (attempt + 1))
        else:
            return OVERFLOW_PROBE_WORDS, f"a {OVERFLOW_PROBE_WORDS}-word prompt fits (at least)", False
    return DEFAULT_CONTEXT_TOKENS, "default", False


async def _embeddings(client: openai.AsyncOpenAI, model: str) -> tuple[bool, str | None]:
    for attempt in range(PROBE_TRIES):
        try:
            response = await client.embeddings.create(model=model, input=["probe"])
            break
        except openai.OpenAIError as exc:
            status = getattr(exc, "status_code", None)
            if transient(exc) and attempt + 1 < PROBE_TRIES and status != 501:
                await asyncio.sleep(PROBE_BACKOFF_S * (attempt + 1))
                continue
            return False, (f"HTTP {status}: " if status else "") + _error_text(exc)
    if not response.data or not response.data[0].embedding:
        return False, "the server answered with no vector"
    return True, f"{len(response.data[0].embedding)} dimensions"


def concurrency_from(single_s: float, together_s: list[float]) -> int | None:
    """How many of PARALLEL_PROBE requests sent at once ran at the same time, from one request's latency
    and the wall time of each batch: None when they all did (no limit worth applying) or a request is too
    fast to tell. A busy machine (the client's CPU, the server's) only ever lengthens a batch, so the
    fastest batch is the one that says most about the server."""
    if single_s < MEASURABLE_LATENCY_S or not together_s:
        return None
    overlap = PARALLEL_PROBE * single_s / min(together_s)  # about how many of them ran at the same time
    return None if overlap > NO_LIMIT_OVERLAP else max(1, round(overlap))


async def measure_concurrency(client: openai.AsyncOpenAI, model: str) -> int | None:
    """One request, then PARALLEL_PROBE together, up to PARALLEL_BATCHES times until a batch shows no
    limit: a server measured on a loaded machine once runs its epochs' drafts with the figure for ever,
    and one slow batch must not cap a server that runs them all at once (`concurrency_from`)."""
    async def one() -> float:
        started = time.perf_counter()
        await client.chat.completions.create(
            model=model, max_tokens=8, temperature=0, messages=[{"role": "user", "content": "Say OK."}]
        )
        return time.perf_counter() - started

    async def batch() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(PARALLEL_PROBE)))
        return time.perf_counter() - started

    try:
        # the first request pays for the connection and whatever the server does first; a busy machine
        # lengthens either, so the faster of the two is the request's own latency
        single = min(await one(), await one())
        if single < MEASURABLE_LATENCY_S:
            return None
        batches: list[float] = []
        while len(batches) < PARALLEL_BATCHES:
            batches.append(await batch())
            if concurrency_from(single, batches) is None:
                break
    except openai.OpenAIError:
        return None
    return concurrency_from(single, batches)


async def probe_engine(
    client: openai.AsyncOpenAI,
    *,
    base_url: str,
    model: str,
    api_key: str | None = None,
    embedding_client: openai.AsyncOpenAI | None = None,
    embedding_model: str | None = None,
    configured_context: int | None = None,
    forced_mode: str | None = None,
) -> EngineCapabilities:
    """Ask the engine what it can do (see the module docstring). `client` should not retry (a refused
    shape is never sent twice); `forced_mode` (DREAM_VOTE_FORMAT) replaces the structured-output search:
    it is tried alone, and listed in `modes_refused` if the server refuses it."""
    refused: dict[str, str] = {}
    mode = forced_mode
    if mode is not None and mode != "prompt_only":  # an override is used as it is, but tested: say if it fails
        why = await _try_mode(client, model, mode)
        if why is not None:
            refused[mode] = why
    if mode is None:
        for candidate in VOTE_MODES:
            if candidate == "prompt_only":
                mode = candidate
                break
            why = await _try_mode(client, model, candidate)
            if why is None:
                mode = candidate
                break
            refused[candidate] = why
    context, source, truncates = await _context(client, base_url, api_key, model, configured_context)
    embeddings, note = await _embeddings(embedding_client or client, embedding_model or model)
    concurrency = await measure_concurrency(client, model)
    return EngineCapabilities(
        base_url=base_url, model=model, vote_mode=mode or "prompt_only", context_tokens=context,
        context_source=source, embeddings=embeddings, embedding_note=note, concurrency=concurrency,
        truncates_silently=truncates, modes_refused=refused, probed_at=datetime.now(UTC).isoformat(),
    )
