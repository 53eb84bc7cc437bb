"""The canon's fingerprint: what a committed epoch decided, as plain facts, hashed per section.

Pure, no I/O, at the bottom of the layers with `records.py`: the fabric computes the fingerprint from
the stored rows inside the Reaper's commit transaction, and a replay (`epoch/replay.py`) recomputes the
same facts from the record and compares them (`epoch/canon.py` says where they differ).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

SECTIONS = ("drafts", "votes", "abstentions", "ratings", "outcome", "chapter")
# what identifies an item of a section in a diff
ITEM_KEYS = {"drafts": ("agent",), "votes": ("voter", "target"), "abstentions": ("voter",), "ratings": ("agent",)}


def draft_facts(drafts: Iterable[Any]) -> list[dict[str, Any]]:
    return sorted(
        ({"agent": d.agent_name, "text": d.text, "completion_tokens": d.completion_tokens,
          "finish_reason": d.finish_reason, "truncated": d.truncated, "penalty": d.penalty,
          "novelty_penalty": d.novelty_penalty} for d in drafts),
        key=lambda f: f["agent"],
    )


def vote_facts(votes: Iterable[Any]) -> list[dict[str, Any]]:
    return sorted(
        ({"voter": v.voter_agent, "target": v.target_agent, "insight_score": v.insight_score,
          "rationale": v.rationale, "label": v.masked_label, "position": v.position} for v in votes),
        key=lambda f: (f["voter"], f["target"]),
    )


def abstention_facts(abstentions: Iterable[Any]) -> list[dict[str, Any]]:
    return sorted(({"voter": a.voter_agent, "reason": a.reason} for a in abstentions), key=lambda f: f["voter"])


def rating_facts(ratings: Iterable[Any]) -> list[dict[str, Any]]:
    return sorted(
        ({"agent": r.agent_name, "rating_before": r.rating_before, "rating_after": r.rating_after,
          "epoch_score": r.epoch_score, "penalty": r.penalty, "rank": r.rank} for r in ratings),
        key=lambda f: f["agent"],
    )


def outcome_facts(winner: Any, loser: Any) -> dict[str, Any]:
    """The winner and the eliminated agent (ids, or names: whatever the caller compares like with like)."""
    return {"winner": None if winner is None else str(winner), "eliminated": None if loser is None else str(loser)}


def chapter_facts(chapter: Any | None) -> dict[str, Any] | None:
    if chapter is None:
        return None
    return {"number": chapter.chapter_number, "title": chapter.title, "text": chapter.text,
            "agent_id": str(chapter.agent_id), "draft_id": str(chapter.draft_id),
            "epoch_score": chapter.epoch_score, "margin": chapter.margin}


def section_digest(facts: Any) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def section_digests(facts: Mapping[str, Any]) -> dict[str, str]:
    return {name: section_digest(facts[name]) for name in SECTIONS}


def fingerprint(digests: Mapping[str, str]) -> str:
    """One digest over every section's digest, in a fixed order."""
    return hashlib.sha256("".join(f"{name}:{digests[name]}\n" for name in SECTIONS).encode()).hexdigest()
