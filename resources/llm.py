"""The LLM resource: any OpenAI-compatible server through `openai.AsyncOpenAI`.

Pointing `base_url` at vLLM, llama.cpp, Ollama or OpenAI needs no code change; with no `base_url`
the offline engine (a simulator shipped in this repo) is started on 127.0.0.1 and used. Every call,
successful or not, is kept as an `LlmCallRow` for the fabric's `llm_calls` ledger; the API key is
never part of what is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import dagster as dg
import openai
from pydantic import Field, PrivateAttr

from resources.engine_probe import (
    VOTE_MODES,
    EngineCapabilities,
    about_format,
    probe_engine,
    structured_fields,
)
from resources.fabric import EpochRecord, LlmCallRow, StateFabric, request_hash
from resources.locations import state_dir

OFFLINE_API_KEY = "offline-engine"  # the offline engine accepts any key; real servers get DREAM_LLM_API_KEY


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for every engine client: building one loads the CA bundle (about
    0.06 s), and an epoch builds several clients (each step's session, the probe). Made by the HTTP
    library under `openai` (httpx2, httpx before it), so the trust is the library's default."""
    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
    return importlib.import_module(base.__module__.split(".")[0]).create_ssl_context()


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


class LLMCallError(RuntimeError):
    """A call that failed after the client's own retries; the failure is already recorded. `status` is
    the HTTP status if the server answered, `detail` its message."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass
class LLMSession:
    """One epoch step's view of the engine: a client, a concurrency limit and the calls made."""

    client: openai.AsyncOpenAI
    model: str
    embedding_model: str
    limit: asyncio.Semaphore
    epoch_key: str | None
    temperature: float
    calls: list[LlmCallRow] = field(default_factory=list)
    recorded: dict[str, LlmCallRow] | None = None  # answers already recorded for this epoch, by request hash
    strict_replay: bool = False  # a committed epoch: every answer must come from the record
    seed: int | None = None  # sent as the request's `seed`: set for an alternate world (a re-roll)
    vote_mode: str = "json_schema"  # how ballots ask for their JSON (resources/engine_probe.py, VOTE_MODES)
    capabilities: EngineCapabilities | None = None  # what the engine was probed to do (None: a strict replay)
    embedding_client: openai.AsyncOpenAI | None = None  # a separate embedding server, if configured
    embeddings_available: bool = True  # False: memory and novelty go without vectors (full text)
    on_step_down: Callable[[str, str, str], None] | None = None  # (from, to, why): recorded by the resource
    context_tokens: int | None = None  # the engine's context window the epoch's requests must fit (as recorded)
    _failed_modes: set[str] = field(default_factory=set)

    def ballot_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The request fields asking for a ballot in the session's vote mode."""
        return structured_fields(self.vote_mode, schema)

    def step_down(self, mode: str, why: str) -> bool:
        """`mode` failed in a way that is about the structured-output request itself: move to the next mode
        (recorded), so the same failing request shape is not sent again. False if there is nowhere to go or
        another ballot already moved on."""
        if mode != self.vote_mode:
            return mode in self._failed_modes  # a concurrent ballot stepped down already: retry in the new mode
        if mode == "prompt_only":
            return False
        self._failed_modes.add(mode)
        later = [m for m in VOTE_MODES[VOTE_MODES.index(mode) + 1:] if m not in self._failed_modes]
        refused = self.capabilities.modes_refused if self.capabilities else {}
        self.vote_mode = next((m for m in later if m not in refused), "prompt_only")
        if self.on_step_down is not None:
            self.on_step_down(mode, self.vote_mode, why)
        return True

    def _replayed(self, request: dict[str, Any]) -> LlmCallRow | None:
        if self.recorded is None:
            return None
        call = self.recorded.get(request_hash(request))
        if call is None and self.strict_replay:
            raise LLMCallError(f"replay of {self.epoch_key}: no recorded answer for a {request.get('model')} request")
        return call

    async def chat(
        self,
        *,
        purpose: str,
        agent_name: str | None,
        messages: Sequence[dict[str, str]],
        max_tokens: int,
        response_format: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            request["seed"] = self.seed
        if response_format is not None:
            request["response_format"] = response_format
        if extra_body:
            request["extra_body"] = extra_body  # vLLM's guided_json, Ollama's format
        replayed = self._replayed(request)
        if replayed is not None:
            return _completion(openai.types.chat.ChatCompletion.model_validate(replayed.response), replayed.latency_s)
        async with self.limit:
            started = time.perf_counter()
            try:
                if response_format is None and not extra_body:
                    response = await self.client.chat.completions.create(**request)
                else:
                    response = await self._structured(request)
            except openai.OpenAIError as exc:
                self._record(purpose, agent_name, request, None, started, error=exc)
                raise LLMCallError(f"{purpose} call for {agent_name or '-'} failed: {_describe(exc)}",
                                   status=getattr(exc, "status_code", None), detail=str(exc)) from exc
            latency = time.perf_counter() - started
        self._record(purpose, agent_name, request, response, started, latency=latency)
        return _completion(response, latency)

    async def _structured(self, request: dict[str, Any]) -> Any:
        """A structured-output request, retried like any other (429, 5xx, connection, timeout) except when
        the server's error is about the format itself: that shape is never sent twice (the caller steps
        down to another mode instead)."""
        client = self.client.with_options(max_retries=0)
        for retry in range(self.client.max_retries + 1):
            try:
                return await client.chat.completions.create(**request)
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                status = getattr(exc, "status_code", None)
                if retry == self.client.max_retries or (status is not None and about_format(str(exc))):
                    raise
                await asyncio.sleep(min(8.0, 0.5 * 2**retry))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def embed(self, texts: Sequence[str], *, purpose: str = "embedding") -> list[list[float]]:
        request = {"model": self.embedding_model, "input": list(texts)}
        replayed = self._replayed(request)
        if replayed is not None:
            response = openai.types.CreateEmbeddingResponse.model_validate(replayed.response)
        else:
            async with self.limit:
                started = time.perf_counter()
                try:
                    response = await (self.embedding_client or self.client).embeddings.create(**request)
                except openai.OpenAIError as exc:
                    self._record(purpose, None, request, None, started, error=exc)
                    raise LLMCallError(f"{purpose} call failed: {_describe(exc)}") from exc
            self._record(purpose, None, request, response, started)  # kept whole: replays need the vectors
        return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

    def _record(
        self,
        purpose: str,
        agent_name: str | None,
        request: dict[str, Any],
        response: Any,
        started: float,
        *,
        latency: float | None = None,
        error: BaseException | None = None,
        usage: Any = None,
    ) -> None:
        usage = usage if usage is not None else getattr(response, "usage", None)
        self.calls.append(
            LlmCallRow(
                epoch_key=self.epoch_key,
                purpose=purpose,
                agent_name=agent_name,
                request=request,
                response=response.model_dump(mode="json") if response is not None else None,
                prompt_tokens=getattr(usage, "prompt_tokens", None),
                completion_tokens=getattr(usage, "completion_tokens", None),
                latency_s=latency if latency is not None else time.perf_counter() - started,
                status="error" if error else "ok",
                error=_describe(error) if error else None,
                started_at=datetime.now(UTC) - timedelta(seconds=time.perf_counter() - started),
            )
        )


def _completion(response: Any, latency: float) -> Completion:
    choice = response.choices[0] if response.choices else None
    usage = response.usage
    return Completion(
        text=(choice.message.content or "") if choice else "",
        finish_reason=choice.finish_reason if choice else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        latency_s=latency,
    )


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {exc}"[:500]


class LLMEngine(dg.ConfigurableResource):
    """An OpenAI-compatible inference endpoint used for drafts, votes and embeddings."""

    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL (…/v1); unset = the bundled offline engine"
    )
    api_key: str | None = Field(default=None, description="API key; set it with EnvVar('DREAM_LLM_API_KEY')")
    model: str = Field(default="offline-scribe", description="chat model name on the server")
    embedding_model: str | None = Field(default=None, description="embedding model; unset = `model`")
    timeout_s: float = Field(default=120.0, gt=0, description="per-request timeout in seconds")
    max_retries: int = Field(default=3, ge=0, description="client retries on 429/5xx/connection errors")
    max_concurrency: int = Field(default=8, ge=1, description="engine calls in flight at once")
    max_tokens: int = Field(default=2048, ge=16, description="hard token cap of a draft")
    # the book's memory in a draft prompt (dream_pipeline/domains/book/memory.py, docs/memory.md)
    context_tokens: int = Field(
        default=1500, ge=200, description="budget of a draft prompt's user message, in whitespace tokens"
    )
    context_top_k: int = Field(default=3, ge=0, le=20, description="earlier chapters retrieved by similarity")
    summary_tokens: int = Field(default=200, ge=20, description="cap of the rolling summary of the book")
    temperature: float = Field(default=0.9, ge=0, le=2)
    vote_format: Literal["auto", "json_schema", "json_object_schema", "guided_json", "ollama_format",
                         "json_object", "prompt_only"] = Field(
        default="auto", description="structured-output mode for ballots; auto = the best the probe finds"
    )
    context_window: int | None = Field(
        default=None, ge=256, description="the engine's context in tokens when its endpoints do not say "
        "(DREAM_LLM_CONTEXT_TOKENS)"
    )
    embedding_base_url: str | None = Field(
        default=None, description="a separate OpenAI-compatible embedding server (…/v1); unset = base_url"
    )
    embedding_api_key: str | None = Field(default=None, description="its API key (DREAM_LLM_EMBEDDING_API_KEY)")
    fabric: StateFabric | None = Field(
        default=None, description="where recorded calls are read from to replay a committed epoch"
    )
    replay: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: recorded answers are reused (strictly for a committed epoch: a backfill replays it)",
    )
    _spare_client: openai.AsyncOpenAI | None = PrivateAttr(default=None)  # built ahead by warm_up
    _capabilities: dict[tuple[str, str], EngineCapabilities] = PrivateAttr(default_factory=dict)

    def recorded_calls(self, epoch_key: str | None) -> tuple[dict[str, LlmCallRow] | None, bool, int | None]:
        """The answers already recorded for the epoch, whether the replay is strict, and the epoch's
        world seed (set when an alternate world was promoted: its requests carried that seed).

        A committed epoch (a backfill) is replayed strictly: no engine traffic at all. An epoch that
        was interrupted (killed, crashed) reuses what it already paid for and asks the engine only
        for the rest, so its next run finishes it with the same drafts and ballots.
        """
        if self.fabric is None or epoch_key is None:
            return None, False, None
        return self._recorded(self.fabric.find_epoch(epoch_key))

    def _recorded(self, epoch: EpochRecord | None) -> tuple[dict[str, LlmCallRow] | None, bool, int | None]:
        """`recorded_calls` of an epoch already read."""
        if self.fabric is None or epoch is None:
            return None, False, None
        if self.replay == "off":
            return None, False, epoch.world_seed
        return self.fabric.recorded_calls(epoch.epoch_key), epoch.status == "committed", epoch.world_seed

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url
        from offline_engine import EngineConfig, ensure_engine

        return ensure_engine(state_dir(), EngineConfig.from_env())

    @asynccontextmanager
    async def session(self, epoch_key: str | None, *, seed: int | None = None,
                      probe: bool = True) -> AsyncIterator[LLMSession]:
        """Calls for one epoch step, recorded under `epoch_key`. `seed` (an alternate world's) is sent
        with every chat request; by default it is the epoch's own world seed, if any. `probe=False` is
        for a session that only embeds (`dream search`): it asks no ballot, so no mode is looked for.

        The session asks ballots in the epoch's vote mode: the one it recorded (a rerun or replay sends the
        same request shapes, so their recorded answers are found), else `vote_format` if set, else the best
        mode the engine was probed to honour. A committed epoch's replay probes nothing."""
        epoch = self.fabric.find_epoch(epoch_key) if self.fabric is not None and epoch_key else None
        recorded, strict, world_seed = self._recorded(epoch)
        modes = dict(epoch.engine_modes or {}) if epoch is not None else {}
        client = self._spare_client
        self._spare_client = None
        base_url = self.resolved_base_url()
        if client is None or str(client.base_url).rstrip("/") != base_url.rstrip("/"):
            if client is not None:
                await client.close()  # built for an engine that has since moved
            client = self._client(base_url)
        embedding_client = self._client(self.embedding_base_url, self.embedding_api_key) \
            if self.embedding_base_url else None
        try:
            capabilities = None
            if strict and "vote_mode" not in modes:  # committed before modes were recorded: the old default
                modes = {"vote_mode": self.vote_format if self.vote_format != "auto" else "json_schema",
                         "embedding_mode": "vectors"}
            if (not strict or not modes) and probe:
                capabilities = await self.capabilities(client, base_url, embedding_client)
            if "vote_mode" not in modes and capabilities is None:  # embeddings only
                modes = {"vote_mode": "json_schema", "embedding_mode": "vectors"}
            if "vote_mode" not in modes:
                modes["vote_mode"] = self.vote_format if self.vote_format != "auto" else capabilities.vote_mode
                modes["embedding_mode"] = "vectors" if capabilities.embeddings else "full_text"
                modes["context_tokens"] = capabilities.context_tokens
                if epoch is not None and epoch.epoch_key == epoch_key:
                    self.fabric.set_engine_modes(epoch_key, modes)
            limit = self.max_concurrency
            if capabilities is not None and capabilities.concurrency:
                limit = min(limit, capabilities.concurrency)
            session = LLMSession(
                recorded=recorded,
                strict_replay=strict,
                seed=seed if seed is not None else world_seed,
                client=client,
                model=self.model,
                embedding_model=self.embedding_model or self.model,
                limit=asyncio.Semaphore(limit),
                epoch_key=epoch_key,
                temperature=self.temperature,
                vote_mode=modes["vote_mode"],
                capabilities=capabilities,
                embedding_client=embedding_client,
                embeddings_available=modes.get("embedding_mode", "vectors") == "vectors",
                context_tokens=modes.get("context_tokens") or (capabilities.context_tokens if capabilities else None),
            )
            session.on_step_down = lambda old, new, why: self._stepped_down(session, base_url, old, new, why)
            yield session
        finally:
            await client.close()
            if embedding_client is not None:
                await embedding_client.close()

    def known_capabilities(self, base_url: str) -> EngineCapabilities | None:
        """What the engine was already found to do: this process's memory, else the fabric's record."""
        key = (base_url.rstrip("/"), self.model)
        known = self._capabilities.get(key)
        if known is None and self.fabric is not None:
            stored = self.fabric.engine_capabilities(*key)
            if stored is not None:
                known = self._capabilities[key] = EngineCapabilities.from_json(stored)
        return known

    async def capabilities(self, client: openai.AsyncOpenAI, base_url: str,
                           embedding_client: openai.AsyncOpenAI | None = None) -> EngineCapabilities:
        """What the engine can do: from this process's memory, else the fabric, else a probe (stored)."""
        known = self.known_capabilities(base_url)
        if known is not None:
            return known
        key = (base_url.rstrip("/"), self.model)
        known = await probe_engine(
            client.with_options(max_retries=0), base_url=key[0], model=self.model, api_key=self.api_key,
            embedding_client=embedding_client.with_options(max_retries=0) if embedding_client else None,
            embedding_model=self.embedding_model, configured_context=self.context_window,
            forced_mode=None if self.vote_format == "auto" else self.vote_format,
        )
        if self.fabric is not None:
            self.fabric.save_engine_capabilities(*key, known.as_json())
        self._capabilities[key] = known
        return known

    def probe_now(self) -> EngineCapabilities:
        """Probe (or read the known capabilities of) the configured engine, outside any epoch: preflight,
        and the drafts' memory mode and context window. Known capabilities need no client and no event loop."""
        base_url = self.resolved_base_url()
        known = self.known_capabilities(base_url)
        if known is not None:
            return known

        async def probe() -> EngineCapabilities:
            client = self._client(base_url)
            embedding_client = self._client(self.embedding_base_url, self.embedding_api_key) \
                if self.embedding_base_url else None
            try:
                return await self.capabilities(client, base_url, embedding_client)
            finally:
                await client.close()
                if embedding_client is not None:
                    await embedding_client.close()

        return asyncio.run(probe())

    def served_context(self) -> int | None:
        """The context window the engine states itself (`EngineCapabilities.served_context`), probed once."""
        return self.probe_now().served_context

    def memory_mode(self, epoch: EpochRecord | None) -> str:
        """How the epoch's memory and novelty work: "vectors" (embeddings) or "full_text" (no embedding
        engine). What the epoch recorded wins, so a rerun, replay or re-roll builds the same prompt."""
        recorded = (epoch.engine_modes or {}).get("embedding_mode") if epoch is not None else None
        if recorded:
            return recorded
        if epoch is not None and epoch.status == "committed":
            return "vectors"  # committed before the mode was recorded: there was no other
        return "vectors" if self.probe_now().embeddings else "full_text"

    def _stepped_down(self, session: LLMSession, base_url: str, old: str, new: str, why: str) -> None:
        """A vote mode failed mid-run: remember it (this process, the fabric) and record the change."""
        key = (base_url.rstrip("/"), self.model)
        caps = session.capabilities or self._capabilities.get(key)
        if caps is not None:
            caps = dataclasses.replace(caps, vote_mode=new, modes_refused={**caps.modes_refused, old: why[:300]})
            self._capabilities[key] = caps
            session.capabilities = caps
        if self.fabric is not None:
            if caps is not None:
                self.fabric.save_engine_capabilities(*key, caps.as_json(), probed=False)
            self.fabric.record_mode_change(*key, session.epoch_key, old, new, why)
            if session.epoch_key:
                self.fabric.set_engine_modes(session.epoch_key, {"vote_mode": new, "stepped_down_from": old})

    def warm_up(self) -> None:
        """Build the next session's client now. A staged epoch run does this before it waits at the
        barrier, so its first draft goes out as soon as the predecessor commits instead of paying
        for the client first (its HTTP transport's imports and the process's TLS context: about 0.15 s in
        a fresh process). The client opens no connection until that session uses it."""
        self._spare_client = self._client(self.resolved_base_url())

    def _client(self, base_url: str, api_key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or self.api_key or OFFLINE_API_KEY,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
            http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()),  # openai's defaults, one TLS context
        )
