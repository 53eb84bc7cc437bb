"""Ballots: the JSON a voter must return, and its strict parse into votes.

A model reply is untrusted: it is accepted only if it scores every label on the
ballot exactly once with an integer 1..10 and a string rationale.  Nothing is
ever repaired by guessing; a bad reply raises :class:`BallotError` with a short
``reason`` the caller can log, count and retry on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dream_pipeline.tournament.anonymize import Presentation

__all__ = [
    "MAX_RATIONALE_CHARS",
    "MIN_SCORE",
    "MAX_SCORE",
    "BALLOT_ERROR_REASONS",
    "Vote",
    "BallotError",
    "ballot_json_schema",
    "find_ballot_json",
    "parse_ballot",
]

MIN_SCORE = 1
MAX_SCORE = 10
MAX_RATIONALE_CHARS = 2000

BALLOT_ERROR_REASONS = (
    "not_json",  # not parseable JSON (after stripping whitespace and one ``` fence)
    "missing_votes",  # top level is not an object with a "votes" array
    "bad_vote",  # an entry of "votes" is not an object, or lacks a string draft_id / a score
    "unknown_label",  # draft_id not on this ballot
    "duplicate_label",  # draft_id scored twice
    "missing_label",  # a draft on the ballot was not scored
    "score_not_integer",  # score is a bool, a string, a non-integral or non-finite number
    "score_out_of_range",  # integer outside 1..10
    "bad_rationale",  # rationale missing or not a string
)


@dataclass(frozen=True)
class Vote:
    """One voter's score for one other author's draft (``label`` is the mask it was shown under)."""

    voter: str
    target: str
    label: str
    insight_score: int
    rationale: str


class BallotError(ValueError):
    """A model reply that is not a valid ballot; ``reason`` is one of ``BALLOT_ERROR_REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def ballot_json_schema(labels: Sequence[str]) -> dict:
    """JSON Schema of a ballot over ``labels``, valid for OpenAI ``json_schema`` strict mode."""
    labels = list(labels)
    return {
        "type": "object",
        "properties": {
            "votes": {
                "type": "array",
                "minItems": len(labels),
                "maxItems": len(labels),
                "items": {
                    "type": "object",
                    "properties": {
                        "draft_id": {"type": "string", "enum": labels},
                        "insight_score": {"type": "integer", "minimum": MIN_SCORE, "maximum": MAX_SCORE},
                        "rationale": {"type": "string"},
                    },
                    "required": ["draft_id", "insight_score", "rationale"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["votes"],
        "additionalProperties": False,
    }


_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*[ \t]*\r?\n?(?P<body>.*?)\r?\n?```\Z", re.DOTALL)


def _unfence(raw: str) -> str:
    text = raw.strip()
    match = _FENCE.match(text)
    return match.group("body").strip() if match else text


_ANY_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\r?\n(?P<body>.*?)```", re.DOTALL)
MAX_OBJECT_STARTS = 200  # a reply is scanned from at most this many "{" for an object holding "votes"


def find_ballot_json(raw: str) -> Any:
    """The ballot inside a reply that wraps it, as models without structured output do: in a code fence
    anywhere in the text, or inside prose. The first JSON object with a "votes" key wins (a fenced one
    first); with none, the reply parsed as a whole. Raises ``json.JSONDecodeError`` if nothing parses.
    Only where the JSON is, is guessed: what it says is checked as strictly as ever."""
    text = raw.strip()
    decoder = json.JSONDecoder()
    for match in _ANY_FENCE.finditer(text):
        try:
            doc = json.loads(match.group("body"))
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "votes" in doc:
            return doc
    starts = [i for i, ch in enumerate(text) if ch == "{"][:MAX_OBJECT_STARTS]
    for start in starts:
        try:
            doc, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "votes" in doc:
            return doc
    return json.loads(_unfence(raw))


def _score(value: Any, label: str) -> int:
    # bool is an int subclass: true/false are not scores.  "7" is rejected: the schema says integer.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BallotError("score_not_integer", f"score for {label!r} is {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise BallotError("score_not_integer", f"score for {label!r} is {value!r}")
        value = int(value)
    if not MIN_SCORE <= value <= MAX_SCORE:
        raise BallotError(
            "score_out_of_range", f"score for {label!r} is {value}, not {MIN_SCORE}..{MAX_SCORE}"
        )
    return value


def parse_ballot(raw: str, presentation: Presentation, *, tolerant: bool = False) -> list[Vote]:
    """Parse a model reply strictly into one :class:`Vote` per ballot item, in presentation order.

    Tolerated: surrounding whitespace, one Markdown code fence (```json ... ```), whitespace
    around a draft_id, extra keys (ignored), scores written as integral floats (7.0 -> 7).
    Rejected: everything else listed in ``BALLOT_ERROR_REASONS``.  Rationales longer than
    ``MAX_RATIONALE_CHARS`` are truncated, otherwise kept verbatim. ``tolerant`` (a reply the server
    could not constrain: prompt-only, plain JSON mode) also finds the ballot inside prose or a code
    fence anywhere in the reply (:func:`find_ballot_json`); the ballot itself is checked the same.
    """
    try:
        doc = find_ballot_json(raw) if tolerant else json.loads(_unfence(raw))
    except (json.JSONDecodeError, TypeError) as exc:
        raise BallotError("not_json", str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("votes"), list):
        raise BallotError("missing_votes", 'expected an object with a "votes" array')
    wanted = set(presentation.labels())
    seen: dict[str, tuple[int, str]] = {}
    for entry in doc["votes"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("draft_id"), str):
            raise BallotError("bad_vote", f"vote entry without a string draft_id: {entry!r:.200}")
        label = entry["draft_id"].strip()
        if label not in wanted:
            raise BallotError("unknown_label", f"{label!r:.200} is not on this ballot")
        if label in seen:
            raise BallotError("duplicate_label", f"{label!r} scored twice")
        if "insight_score" not in entry:
            raise BallotError("bad_vote", f"no insight_score for {label!r}")
        score = _score(entry["insight_score"], label)
        rationale = entry.get("rationale")
        if not isinstance(rationale, str):
            raise BallotError("bad_rationale", f"rationale for {label!r} is not a string")
        seen[label] = (score, rationale[:MAX_RATIONALE_CHARS])
    missing = [label for label in presentation.labels() if label not in seen]
    if missing:
        raise BallotError("missing_label", f"not scored: {', '.join(missing)}")
    return [
        Vote(
            voter=presentation.voter,
            target=item.author,
            label=item.label,
            insight_score=seen[item.label][0],
            rationale=seen[item.label][1],
        )
        for item in presentation.items
    ]
