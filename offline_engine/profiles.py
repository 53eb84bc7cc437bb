"""Engine profiles: the offline engine behaving like the servers people actually run.

A profile fixes what a real server does with structured output, how large its context is and
what happens past it, whether it serves embeddings and how many requests it runs at once, as each
project documents it (docs/offline_engine.md, *Profiles*). Tests and `bench.engines` select one
with `DREAM_ENGINE_PROFILE`; the pipeline only ever sees the HTTP behaviour.

What a request asks for is its *structured kind*: `json_schema`, `json_object_schema`
(llama-cpp-python's `{"type": "json_object", "schema": ...}`), `json_object`, `guided_json`
(vLLM's extra body field), `format` (Ollama's schema field) or nothing. A profile answers each
kind with one of:

- `constrained`: the reply is held to the schema (labels from the schema's enum), always valid;
- `json`: valid JSON following the prompt, which a weak model sometimes gets wrong;
- `ignored`: as if nothing was asked (the field is unknown to that server): the prompt alone;
- an HTTP error, with the status and message that server sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Treatment = Literal["constrained", "json", "ignored"]
STRUCTURED_KINDS = ("json_schema", "json_object_schema", "json_object", "guided_json", "format")


@dataclass(frozen=True)
class Rejection:
    status: int
    message: str
    type_: str = "invalid_request_error"


@dataclass(frozen=True)
class Profile:
    """One server's traits. `context_tokens` None: no context limit beyond the engine's own cap."""

    name: str
    kinds: dict[str, Treatment | Rejection] = field(default_factory=dict)
    context_tokens: int | None = None
    # past the context: "strict" (prompt + max_tokens over it: 400, as OpenAI and vLLM), "prompt" (a prompt
    # over it: 400; the completion stops where the context ends, as llama.cpp), "truncate" (the prompt's
    # beginning is dropped without a word, as Ollama)
    overflow: Literal["strict", "prompt", "truncate"] = "strict"
    context_endpoint: Literal["max_model_len", "props", "ollama_show"] | None = None
    embeddings: Rejection | None = None  # None: served
    serial: bool = False  # one request at a time
    flaw_rate: float = 0.0  # share of unconstrained ballots with a mistake a weak model makes
    wrap_rate: float = 0.0  # share of prompt-only ballots inside a code fence or prose

    def treatment(self, kind: str | None) -> Treatment | Rejection:
        if kind is None:
            return "ignored"
        return self.kinds.get(kind, "ignored")


def _overflow_message(profile: str, context: int, prompt: int, completion: int) -> str:
    if profile == "llama_cpp_python":
        return f"Requested tokens ({prompt}) exceed context window of {context}"
    if profile in ("llama_cpp", "bare"):
        return (f"the request ({prompt} tokens) exceeds the available context size ({context} tokens), "
                "try increasing it")
    return (f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion.")


PROFILES: dict[str, Profile] = {
    "openai": Profile(
        "openai",
        kinds={"json_schema": "constrained", "json_object": "json", "json_object_schema": "json"},
        context_tokens=16384, overflow="strict",
    ),
    "vllm": Profile(
        "vllm",
        kinds={"json_schema": "constrained", "guided_json": "constrained", "json_object": "json",
               "json_object_schema": "json"},
        context_tokens=8192, overflow="strict", context_endpoint="max_model_len",
        embeddings=Rejection(400, "The model does not support Embeddings API"), flaw_rate=0.05, wrap_rate=0.3,
    ),
    "llama_cpp_python": Profile(
        "llama_cpp_python",
        kinds={"json_schema": Rejection(500, "1 validation error for CreateChatCompletionRequest\n"
                                             "response_format.type\n  Input should be 'text' or 'json_object'",
                                        "internal_server_error"),
               "json_object_schema": "constrained", "json_object": "json"},
        context_tokens=2048, overflow="prompt",
        embeddings=Rejection(500, "Llama model must be created with embedding=True to call this method",
                             "internal_server_error"),
        serial=True, flaw_rate=0.15, wrap_rate=0.5,
    ),
    "llama_cpp": Profile(
        "llama_cpp",
        kinds={"json_schema": "constrained", "json_object_schema": "constrained", "json_object": "json"},
        context_tokens=4096, overflow="prompt", context_endpoint="props",
        embeddings=Rejection(501, "This server does not support embeddings. Start it with `--embeddings`",
                             "not_supported_error"),
        flaw_rate=0.15, wrap_rate=0.5,
    ),
    "ollama": Profile(
        "ollama",
        kinds={"format": "constrained", "json_schema": "json", "json_object": "json", "json_object_schema": "json"},
        context_tokens=2048, overflow="truncate", context_endpoint="ollama_show", flaw_rate=0.15, wrap_rate=0.5,
    ),
    "bare": Profile(
        "bare",
        kinds={kind: Rejection(400, "response_format is not supported by this server")
               for kind in ("json_schema", "json_object_schema", "json_object")},
        context_tokens=4096, overflow="prompt",
        embeddings=Rejection(404, "Not Found", "not_found_error"), flaw_rate=0.15, wrap_rate=0.67,
    ),
}
PROFILE_NAMES = tuple(PROFILES)


def structured_kind(response_format: dict[str, Any] | None, extras: dict[str, Any]) -> str | None:
    """Which structured-output mechanism a request uses (see the module docstring)."""
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            return "json_schema"
        if kind == "json_object":
            return "json_object_schema" if isinstance(response_format.get("schema"), dict) else "json_object"
    if extras.get("guided_json") is not None:
        return "guided_json"
    if isinstance(extras.get("format"), dict | str) and extras.get("format"):
        return "format"
    return None


def request_schema(response_format: dict[str, Any] | None, extras: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request carries, wherever its dialect puts it."""
    rf = response_format if isinstance(response_format, dict) else {}
    for candidate in ((rf.get("json_schema") or {}).get("schema"), rf.get("schema"), extras.get("guided_json"),
                      extras.get("format")):
        if isinstance(candidate, dict):
            return candidate
    return None


def schema_labels(schema: dict[str, Any] | None) -> list[str] | None:
    """The draft labels a ballot schema allows (its `draft_id` enum), if it has one."""
    try:
        labels = schema["properties"]["votes"]["items"]["properties"]["draft_id"]["enum"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def overflow_error(profile: Profile, prompt: int, max_tokens: int | None) -> Rejection | None:
    """The 400 a server sends for a request that does not fit its context, if this one does not."""
    ctx = profile.context_tokens
    if ctx is None or profile.overflow == "truncate":
        return None
    completion = max_tokens or 0
    over = prompt + completion > ctx if profile.overflow == "strict" else prompt >= ctx
    if not over:
        return None
    return Rejection(400, _overflow_message(profile.name, ctx, prompt, completion))
