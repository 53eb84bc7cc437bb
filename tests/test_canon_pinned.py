"""The canon's facts, digests and diffs pinned with literals (pure: no database, no engine).

A replay compares what it recomputes with the fingerprint stored at the commit, so the facts a
section holds, their order and the hash over them must never drift; a failed replay reads as
these diff lines. The digests were computed once with `hashlib.sha256` over hand-written JSON.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace as Row

from dream_pipeline import fingerprint
from dream_pipeline.epoch import canon


def test_the_sections_and_their_order():
    assert fingerprint.SECTIONS == ("drafts", "votes", "abstentions", "ratings", "outcome", "chapter")


def test_the_facts_of_each_section_sorted_by_their_key():
    drafts = [Row(agent_name=name, text=f"{name} text", completion_tokens=9, finish_reason="stop", truncated=False,
                  penalty=0.5, novelty_penalty=0.0, id="ignored") for name in ("Sage", "Poet")]
    assert fingerprint.draft_facts(drafts) == [
        {"agent": "Poet", "text": "Poet text", "completion_tokens": 9, "finish_reason": "stop", "truncated": False,
         "penalty": 0.5, "novelty_penalty": 0.0},
        {"agent": "Sage", "text": "Sage text", "completion_tokens": 9, "finish_reason": "stop", "truncated": False,
         "penalty": 0.5, "novelty_penalty": 0.0},
    ]
    votes = [Row(voter_agent=v, target_agent=t, insight_score=s, rationale="r", masked_label="L", position=p)
             for v, t, s, p in (("Sage", "Poet", 7, 0), ("Poet", "Sage", 3, 1), ("Poet", "Jurist", 5, 0))]
    assert fingerprint.vote_facts(votes) == [
        {"voter": "Poet", "target": "Jurist", "insight_score": 5, "rationale": "r", "label": "L", "position": 0},
        {"voter": "Poet", "target": "Sage", "insight_score": 3, "rationale": "r", "label": "L", "position": 1},
        {"voter": "Sage", "target": "Poet", "insight_score": 7, "rationale": "r", "label": "L", "position": 0},
    ]
    assert fingerprint.abstention_facts([Row(voter_agent="Sage", reason="b"), Row(voter_agent="Jurist", reason="a")]) == [
        {"voter": "Jurist", "reason": "a"}, {"voter": "Sage", "reason": "b"}]
    ratings = [Row(agent_name=n, rating_before=1000.0, rating_after=r, epoch_score=6.5, penalty=0.0, rank=k)
               for n, r, k in (("Sage", 992.0, 2), ("Poet", 1008.0, 1))]
    assert fingerprint.rating_facts(ratings) == [
        {"agent": "Poet", "rating_before": 1000.0, "rating_after": 1008.0, "epoch_score": 6.5, "penalty": 0.0,
         "rank": 1},
        {"agent": "Sage", "rating_before": 1000.0, "rating_after": 992.0, "epoch_score": 6.5, "penalty": 0.0,
         "rank": 2},
    ]


def test_the_outcome_and_the_chapter():
    assert fingerprint.outcome_facts(7, None) == {"winner": "7", "eliminated": None}
    assert fingerprint.outcome_facts(None, "x") == {"winner": None, "eliminated": "x"}
    assert fingerprint.chapter_facts(None) is None
    chapter = Row(chapter_number=3, title="T", text="body", agent_id=11, draft_id=12, epoch_score=7.25, margin=0.5)
    assert fingerprint.chapter_facts(chapter) == {"number": 3, "title": "T", "text": "body", "agent_id": "11",
                                            "draft_id": "12", "epoch_score": 7.25, "margin": 0.5}


def test_a_sections_digest_is_the_sha256_of_its_sorted_json():
    assert fingerprint.section_digest([{"text": "x", "agent": "A"}]) == (
        "1e26ae547a1527f82bcbe53d9c11f3efb0534833bd547ab673081451aa4fad3e")
    assert fingerprint.section_digest({"b": dt.date(2026, 1, 2), "a": 1}) == (  # a date as its text
        "a18cb7c5ed861145aacd31102867106efdfc47067edb289fcd6c3fd1ad942725")
    assert fingerprint.section_digest(None) == "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
    facts = {name: None for name in fingerprint.SECTIONS} | {"drafts": [{"text": "x", "agent": "A"}], "extra": 1}
    assert fingerprint.section_digests(facts) == {name: fingerprint.section_digest(None) for name in fingerprint.SECTIONS} | {
        "drafts": "1e26ae547a1527f82bcbe53d9c11f3efb0534833bd547ab673081451aa4fad3e"}


def test_the_fingerprint_hashes_the_section_digests_in_their_order():
    digests = {name: str(i) for i, name in enumerate(fingerprint.SECTIONS)}
    assert fingerprint.fingerprint(digests) == "118eabd26262a2b3274d00f73b5eaa491202bc46629d33a4940363056e579ead"
    assert fingerprint.fingerprint(digests | {"extra": "9"}) == fingerprint.fingerprint(digests)


def test_differences_of_list_sections_name_the_item_and_the_field():
    recorded = [{"voter": "A", "target": "B", "insight_score": 7, "rationale": "r"},
                {"voter": "B", "target": "A", "insight_score": 3, "rationale": "r"}]
    replayed = [{"voter": "A", "target": "B", "insight_score": 2, "rationale": "é" * 70},
                {"voter": "C", "target": "A", "insight_score": 3, "rationale": "r"}]
    assert canon.differences("votes", recorded, replayed) == [
        "votes[A→B].insight_score: recorded 7, replayed 2",
        'votes[A→B].rationale: recorded "r", replayed "' + "é" * 56 + "…",
        "votes[B→A]: recorded, missing from the replay",
        "votes[C→A]: in the replay, not in the record",
    ]
    assert canon.differences("drafts", [{"agent": "P", "text": "a"}], [{"agent": "P"}]) == [
        'drafts[P].text: recorded "a", replayed null']
    assert canon.differences("abstentions", [{"voter": "P", "reason": "x"}], [{"voter": "P", "reason": "x"}]) == []


def test_differences_of_single_sections():
    assert canon.differences("outcome", {"winner": "x", "eliminated": "y"}, {"winner": "x", "eliminated": "z"}) == [
        'outcome[].eliminated: recorded "y", replayed "z"']
    assert canon.differences("chapter", None, None) == []
    assert canon.differences("chapter", None, {"n": 1}) == ['chapter: recorded null, replayed {"n": 1}']
    assert canon.differences("chapter", {"n": 1}, None) == ['chapter: recorded {"n": 1}, replayed null']
    assert canon.differences("chapter", {"n": 1}, {"n": 1}) == []


def test_items_of_any_key_type_are_listed_and_values_of_any_type_shown():
    """Items are ordered by their key as text, so an id and a name never fail to sort (``"(1,)"``
    comes after ``"('x',)"``); a date is shown as its text."""
    assert canon.differences("drafts", [{"agent": 1, "text": "a"}], [{"agent": "x", "text": "a"}]) == [
        "drafts[x]: in the replay, not in the record", "drafts[1]: recorded, missing from the replay"]
    assert canon.differences("chapter", {"at": dt.date(2026, 1, 2)}, {"at": dt.date(2026, 1, 3)}) == [
        'chapter[].at: recorded "2026-01-02", replayed "2026-01-03"']


def test_a_shown_value_is_cut_at_sixty_characters():
    """Its JSON, quotes included: 60 characters are shown whole, more as the first 57 and an ellipsis."""
    assert canon.differences("outcome", {"winner": "w" * 58}, {"winner": "w" * 59}) == [
        f'outcome[].winner: recorded "{"w" * 58}", replayed "{"w" * 56}…']


def test_all_differences_compares_only_the_replayed_sections_in_order():
    recorded = {"drafts": [{"agent": "P", "text": "a"}], "outcome": {"winner": "x"}, "chapter": None}
    replayed = {"outcome": {"winner": "y"}, "drafts": [{"agent": "P", "text": "b"}]}
    assert canon.all_differences(recorded, replayed) == [
        'drafts[P].text: recorded "a", replayed "b"', 'outcome[].winner: recorded "x", replayed "y"']
    assert canon.all_differences(recorded, replayed, sections=("outcome",)) == [
        'outcome[].winner: recorded "x", replayed "y"']
    assert canon.all_differences(recorded, {}) == []
