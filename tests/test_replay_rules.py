"""The replay verification's rules (`dream_pipeline/epoch/replay.py`) on an epoch committed by hand on the real
fabric (ballots written by hand, no engine, no Dagster run): what a match returns, what a difference
raises, and a record altered after its commit. Fast enough to be the mutation benchmark's selection
for the module; tests/test_canon.py replays whole epochs through Dagster."""

from __future__ import annotations

import dataclasses

import pytest
from psycopg.types.json import Jsonb

from dream_pipeline import fingerprint
from dream_pipeline.defs.epoch.assets.elo_rankings import EloConfig
from dream_pipeline.epoch.rank import compose_ranking
from dream_pipeline.epoch.replay import (
    MAX_DIFF_LINES,
    VERIFYING_ASSETS,
    ReplayMismatch,
    is_replay,
    replay_differences,
    verify_replay,
)
from spica import SpicaBook
from tests.fabric_helpers import write_votes
from tests.test_ranking_rules import QUALITY, _commit, _drafts, _open, _votes


@pytest.fixture
def committed(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    scope = _open(fabric, 1)
    names = [a.name for a in scope.agents]
    written = _drafts(fabric, scope, {})
    votes = _votes(scope, dict(zip(names, QUALITY, strict=True)))
    write_votes(fabric, scope.epoch.epoch_id, votes, [])
    _commit(fabric, scope, compose_ranking(scope, written, votes, fabric, EloConfig()), written)
    return fabric.epoch(scope.key)


def test_only_a_committed_epoch_is_replayed(committed):
    assert is_replay(committed) is True
    for status in ("open", "collapsed", "drafting", "voting"):
        assert is_replay(dataclasses.replace(committed, status=status)) is False
    assert VERIFYING_ASSETS == ("drafts", "peer_votes", "elo_rankings", "chapter")
    assert MAX_DIFF_LINES == 40


def test_a_matching_replay_is_verified_with_the_stored_fingerprint(committed, fabric):
    recorded = fabric.canon_facts(committed.epoch_id)
    stored, _ = fabric.committed_fingerprint(committed.epoch_id)
    assert len(stored) == 64
    assert replay_differences(fabric, committed, {}) == []
    assert replay_differences(fabric, committed, recorded) == []
    assert verify_replay(fabric, committed, {"drafts": recorded["drafts"], "votes": recorded["votes"]}) == {
        "replay": "verified", "verified": "drafts, votes", "fingerprint": stored}
    assert verify_replay(fabric, committed, {}) == {
        "replay": "verified", "verified": "the whole record", "fingerprint": stored}


def test_a_differing_replay_fails_with_the_diff_and_names_the_epoch(committed, fabric):
    recorded = fabric.canon_facts(committed.epoch_id)
    outcome = dict(recorded["outcome"], winner="someone else")
    assert replay_differences(fabric, committed, {"outcome": outcome}) == [
        f'outcome[].winner: recorded "{recorded["outcome"]["winner"]}", replayed "someone else"']
    with pytest.raises(ReplayMismatch) as info:
        verify_replay(fabric, committed, {"outcome": outcome})
    line = f'outcome[].winner: recorded "{recorded["outcome"]["winner"]}", replayed "someone else"'
    assert info.value.description == (
        "replay of the committed epoch space_time-00001 does not match its commit (outcome); the canon is "
        "left as it was:\n" + line)
    assert info.value.shown == [line] and str(info.value) == info.value.description


def test_a_long_diff_is_cut_at_forty_lines(committed, fabric):
    recorded = fabric.canon_facts(committed.epoch_id)
    votes = [dict(v, rationale="changed", position=99) for v in recorded["votes"]]  # 20 votes, 2 fields each
    lines = replay_differences(fabric, committed, {"votes": votes})
    assert len(lines) == 40
    with pytest.raises(ReplayMismatch) as info:
        verify_replay(fabric, committed, {"votes": votes + [dict(votes[0], voter="Nobody")]})
    shown = info.value.description.split("\n")[1:]
    assert len(shown) == 41 and shown[:40] == sorted(lines + ["votes[Nobody→" + votes[0]["target"]
                                                              + "]: in the replay, not in the record"])[:40]
    assert shown[40] == "… and 1 more" and info.value.shown == shown
    with pytest.raises(ReplayMismatch) as exactly:
        verify_replay(fabric, committed, {"votes": votes})
    assert exactly.value.description.split("\n")[1:] == lines  # 40 lines: nothing left out


def test_rows_changed_after_the_commit_are_named_by_section(committed, fabric):
    _, sections = fabric.committed_fingerprint(committed.epoch_id)
    with fabric.connection() as conn:
        conn.execute("UPDATE peer_votes SET rationale = 'tampered' WHERE epoch_id = %s", (committed.epoch_id,))
    recorded = fabric.canon_facts(committed.epoch_id)
    now = fingerprint.section_digest(recorded["votes"])
    changed = (f"votes: the stored rows changed after the commit (digest {now[:12]}, "
               f"{sections['votes'][:12]} at commit)")
    assert replay_differences(fabric, committed, {}) == [changed]  # the whole record against its commit
    assert replay_differences(fabric, committed, {"votes": recorded["votes"]}) == [changed]
    assert replay_differences(fabric, committed, {"drafts": recorded["drafts"]}) == []  # only what is replayed


def test_an_epoch_committed_before_fingerprints_compares_with_the_stored_rows(committed, fabric):
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET fingerprint = NULL, fingerprint_sections = NULL"
                     " WHERE epoch_id = %s", (committed.epoch_id,))
        conn.execute("UPDATE peer_votes SET rationale = 'tampered' WHERE epoch_id = %s", (committed.epoch_id,))
    assert replay_differences(fabric, committed, {}) == []  # nothing to compare the record with
    assert verify_replay(fabric, committed, {}) == {
        "replay": "verified", "verified": "the whole record",
        "fingerprint": "(committed before fingerprints were kept: compared with the stored rows)"}
    recorded = fabric.canon_facts(committed.epoch_id)
    assert all(v["rationale"] == "tampered" for v in recorded["votes"])


def test_a_section_the_commit_kept_no_digest_for_reads_as_changed(committed, fabric):
    """A fingerprint stored before a section existed: that section has no digest at commit."""
    _, sections = fabric.committed_fingerprint(committed.epoch_id)
    kept = {name: digest for name, digest in sections.items() if name != "chapter"}
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET fingerprint_sections = %s WHERE epoch_id = %s",
                     (Jsonb(kept), committed.epoch_id))
    now = fingerprint.section_digest(fabric.canon_facts(committed.epoch_id)["chapter"])
    assert replay_differences(fabric, committed, {}) == [
        f"chapter: the stored rows changed after the commit (digest {now[:12]},  at commit)"]
