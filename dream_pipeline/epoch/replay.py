"""Replays verify, they never rewrite: how every epoch step treats an epoch that has committed.

Re-materializing a committed epoch (a backfill from the asset graph, `epoch_job`, the PHASE job, a
retry, any executor) recomputes each step's facts from the record — the recorded engine answers,
the stored drafts and votes — and compares them with the stored rows and with the fingerprint the
commit stored (`dream_pipeline/fingerprint.py`). A match is a success with `replay: verified` in the
metadata; a difference fails the step with a readable diff. Either way nothing committed is
written, so killing a replay at any step changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dream_pipeline import fingerprint
from dream_pipeline.epoch import canon
from resources.fabric import EpochRecord, StateFabric

MAX_DIFF_LINES = 40
VERIFYING_ASSETS = ("drafts", "peer_votes", "elo_rankings", "chapter")  # each says `replay: verified` on a match


class ReplayMismatch(Exception):
    """A replay that does not match its commit: what differs, in lines a reader can follow (Dagster shows
    it as the step's failure: defs/metadata.py)."""

    def __init__(self, description: str, shown: list[str]) -> None:
        super().__init__(description)
        self.description = description
        self.shown = shown


def is_replay(epoch: EpochRecord) -> bool:
    """A committed epoch is only ever verified; an open one is (re)written as before."""
    return epoch.status == "committed"


def replay_differences(fabric: StateFabric, epoch: EpochRecord, replayed: Mapping[str, Any]) -> list[str]:
    """How the replayed sections differ from the stored rows, and which stored sections changed since
    the commit (an altered record). Empty: verified."""
    recorded = fabric.canon_facts(epoch.epoch_id)
    lines = canon.all_differences(recorded, replayed)
    _, committed = fabric.committed_fingerprint(epoch.epoch_id)
    if committed:
        digests = fingerprint.section_digests(recorded)
        lines += [
            f"{name}: the stored rows changed after the commit (digest {digests[name][:12]}, "
            f"{committed.get(name, '')[:12]} at commit)"
            for name in (replayed or fingerprint.SECTIONS)
            if digests[name] != committed.get(name)
        ]
    return lines


def verify_replay(fabric: StateFabric, epoch: EpochRecord, replayed: Mapping[str, Any]) -> dict[str, Any]:
    """Compare a replay's sections (`{}`: only the record against its commit) and return the step's
    metadata; raise `ReplayMismatch` with the diff when they differ. Writes nothing."""
    lines = replay_differences(fabric, epoch, replayed)
    sections = ", ".join(replayed) or "the whole record"
    if lines:
        shown = lines[:MAX_DIFF_LINES] + ([f"… and {len(lines) - MAX_DIFF_LINES} more"] if len(lines) > MAX_DIFF_LINES else [])
        raise ReplayMismatch(
            f"replay of the committed epoch {epoch.epoch_key} does not match its commit "
            f"({sections}); the canon is left as it was:\n" + "\n".join(shown), shown)
    fingerprint, _ = fabric.committed_fingerprint(epoch.epoch_id)
    return {
        "replay": "verified",
        "verified": sections,
        "fingerprint": fingerprint or "(committed before fingerprints were kept: compared with the stored rows)",
    }
