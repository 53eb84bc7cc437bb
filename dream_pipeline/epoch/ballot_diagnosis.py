"""Why an epoch got no valid ballot, in words a user can act on: the cause, what the engine returned,
what to change. Pure: it reads the abstentions, it does no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

STALL_AFTER = 3  # epochs failed in a row without a valid ballot before status and the deck raise it
SAMPLE_CHARS = 160

CONSTRAINED = {"json_schema", "json_object_schema", "guided_json", "ollama_format"}
_FORMAT_ADVICE = ("use a server that holds output to a JSON schema (llama.cpp, llama-cpp-python, vLLM, Ollama, "
                  "OpenAI: `DREAM_VOTE_FORMAT=auto` finds it) or a model that follows instructions better")


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    sample: str | None
    advice: str

    def line(self) -> str:
        shown = f"; the engine returned {self.sample!r}" if self.sample else ""
        return f"{self.cause}{shown}; to fix: {self.advice}"


def diagnose(abstentions: Sequence[tuple[str, str | None]], vote_mode: str) -> Diagnosis:
    """The main reason among (abstention reason, raw reply) pairs, with a sample reply and advice."""
    if not abstentions:
        return Diagnosis("no voter was asked", None, "check that at least two agents drafted")
    kinds = Counter(_kind(reason) for reason, _ in abstentions)
    kind, _ = kinds.most_common(1)[0]
    sample = next((reply for reason, reply in abstentions if reply and _kind(reason) == kind), None)
    if sample is None:
        sample = next((reason for reason, _ in abstentions if _kind(reason) == kind), None)
    sample = " ".join(sample.split())[:SAMPLE_CHARS] if sample else None
    n = f"{kinds[kind]} of {len(abstentions)} voters"
    if kind == "context":
        return Diagnosis(f"{n}: the ballot does not fit the engine's context window", sample,
                         "give the server a larger context (n_ctx, max_model_len, num_ctx) or lower DREAM_MAX_TOKENS "
                         "so drafts are shorter")
    if kind == "format_refused":
        return Diagnosis(f"{n}: the engine refuses the structured-output request ({vote_mode})", sample,
                         "unset DREAM_VOTE_FORMAT so the probe picks a mode the server honours")
    if kind == "engine":
        return Diagnosis(f"{n}: the engine failed the ballot requests", sample,
                         "check the engine's own log; the loop retries with backoff")
    what = "does not write JSON" if kind == "not_json" else f"writes ballots that break the format ({kind})"
    if vote_mode in CONSTRAINED:
        return Diagnosis(f"{n}: the model {what} even with {vote_mode}", sample,
                         "the reply may be cut short: check the server's context and max_tokens, or use a stronger "
                         "model")
    return Diagnosis(f"{n}: the model {what} (ballots asked as {vote_mode}, which the server cannot constrain)",
                     sample, _FORMAT_ADVICE)


def _kind(reason: str) -> str:
    text = reason.lower()
    if text.startswith("engine_error"):
        if "context" in text and any(w in text for w in ("exceed", "maximum", "length", "size")):
            return "context"
        if "http 400" in text or "http 500" in text or "http 422" in text:
            if any(w in text for w in ("response_format", "json_schema", "json_object", "guided", "format")):
                return "format_refused"
        return "engine"
    return text.split(":", 1)[0].strip() or "unknown"
