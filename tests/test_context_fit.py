"""Every request fits the context window, and the bounded review holds in the record: a small window
with long drafts, and a cast of 16, through the real fabric and the offline engine over HTTP."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.epoch.scope import load_scope
from dream_pipeline.epoch.vote import compose_votes
from dream_pipeline.tournament.token_budget import messages_tokens
from offline_engine.prose import count_tokens
from resources.fabric import DraftRow
from resources.llm import LLMEngine
from spica import SpicaBook

WINDOW = 2048


@pytest.fixture(scope="module")
def verbose_engine_url():
    """An engine whose personas run long (a rate of 0.6 past 900 tokens: medians near 1,000), so some drafts
    reach a context-limited cap of 1,024-2,048 tokens."""
    from offline_engine import EngineConfig, running_engine

    with running_engine(EngineConfig(seed=7, long_draft_rate=0.6)) as url:
        yield url


def _calls(fabric, key: str, purpose: str) -> list[dict]:
    with fabric.connection() as conn:
        return conn.execute(
            "SELECT request, response, prompt_tokens, status FROM llm_calls WHERE epoch_key = %s AND purpose = %s",
            (key, purpose),
        ).fetchall()


def _fits(call: dict, window: int) -> bool:
    """The request's prompt (estimated, and as the engine counted it) plus its max_tokens is within the window."""
    request = call["request"]
    estimated = messages_tokens(request["messages"]) + request["max_tokens"]
    counted = (call["prompt_tokens"] or 0) + request["max_tokens"]
    return estimated <= window and counted <= window


@pytest.mark.parametrize("window", [WINDOW, 1536])  # 1536: the smallest window the settings accept
def test_no_ballot_passes_a_small_window_with_seven_long_drafts(fabric, llm, monkeypatch, window):
    """2048 tokens, 7 drafts of about 1,700 words each (about 3,300 estimated tokens): every ballot is
    sent within the window, each voter reviews 2 drafts cut to fit, each draft is reviewed twice."""
    monkeypatch.setenv("DREAM_LLM_CONTEXT_TOKENS", str(window))
    book = SpicaBook.load("space_time")
    fabric.ensure_book(book, 7)
    key = epoch_key(book.name, 1)
    fabric.open_epoch(book.name, key, 1)
    scope = load_scope(fabric, key)
    assert len(scope.agents) == 7
    words = ("The station listened to the signal again and the crew wrote down what it seemed to say "
             "about the star.").split()
    drafts = [
        DraftRow(agent_id=a.instance_id, agent_name=a.name,
                 text=f"Chapter 1: {a.name}\n" + " ".join(words[(i + j) % len(words)] for j in range(1700)),
                 prompt_tokens=300, completion_tokens=1700, finish_reason="length", truncated=True, latency_s=1.0)
        for i, a in enumerate(scope.agents)
    ]
    assert all(count_tokens(d.text) >= 1700 for d in drafts)

    review = compose_votes(scope, drafts, fabric, llm, session_key=key)

    assert review.window == window
    assert review.plan.load == 2 and len(review.plan.cuts) == 7
    ballots = _calls(fabric, key, "ballot")
    assert len(ballots) >= 7 and all(c["status"] == "ok" for c in ballots)
    for call in ballots:
        assert _fits(call, window), (messages_tokens(call["request"]["messages"]), call["request"]["max_tokens"])
        assert "more characters of this draft are not shown on the ballot" in call["request"]["messages"][1]["content"]
    received = Counter(a.target_agent for a in review.assignments)
    assert set(received.values()) == {2} and len(received) == 7
    assert all(a.shown_chars is not None and 0 < a.shown_chars < 5000 for a in review.assignments)
    assert len(review.votes) == 2 * (7 - len(review.abstentions))


def test_a_small_window_epoch_fits_every_request_and_cuts_drafts_by_the_context(
    instance, fabric, verbose_engine_url, monkeypatch
):
    """With the default cap (2048) in a 2048-token window, a draft's max_tokens is what the prompt leaves;
    a draft that runs into it is truncated (finish_reason "length", −5) like one cut by the cap."""
    monkeypatch.setenv("DREAM_LLM_CONTEXT_TOKENS", str(WINDOW))
    monkeypatch.setenv("DREAM_CAST_SIZE", "7")
    llm = LLMEngine(base_url=verbose_engine_url, max_tokens=2048, max_retries=2, timeout_s=30, fabric=fabric)
    cut_by_context = 0
    for number in (1, 2, 3):
        key = epoch_key("space_time", number)
        instance.add_dynamic_partitions("epochs", [key])
        result = dg.materialize(epoch_assets, instance=instance, partition_key=key,
                                resources={"fabric": fabric, "llm": llm})
        assert result.success
        epoch = fabric.epoch(key)
        assert epoch.context_window == WINDOW
        drafts = _calls(fabric, key, "draft")
        assert len(drafts) == 7
        assert all(_fits(c, WINDOW) for c in drafts)
        caps = {c["request"]["max_tokens"] for c in drafts}
        assert len(caps) == 1  # one cap for the epoch: the longest persona prompt's
        cap = caps.pop()
        assert 1024 <= cap < 2048
        assert all(_fits(c, WINDOW) for c in _calls(fabric, key, "ballot"))
        assert fabric.integrity(epoch.epoch_id)["incomplete_ballots"] == 0
        for d in fabric.drafts(epoch.epoch_id):
            if d.completion_tokens == cap:
                assert d.truncated and d.finish_reason == "length" and d.penalty >= 5.0
                cut_by_context += 1
    assert cut_by_context >= 1


def test_a_cast_of_sixteen_reviews_in_a_balanced_bounded_design(run_epoch, fabric, monkeypatch):
    monkeypatch.setenv("DREAM_CAST_SIZE", "16")
    result = run_epoch(1)
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    epoch = fabric.epoch(epoch_key("space_time", 1))
    assert len(epoch.active_agent_ids) == 16
    agents = fabric.agents(epoch.active_agent_ids)
    assert len({a.name for a in agents}) == 16 and all(a.lineage.origin == "cast" for a in agents)
    assert sum(a.lineage.parent_id is not None for a in agents) == 2  # 5 cast + 9 reserve + 2 mutations

    assignments = fabric.review_assignments(epoch.epoch_id)
    per_voter = Counter(a.voter_agent for a in assignments)
    received = Counter(a.target_agent for a in assignments)
    assert set(per_voter.values()) == {6} and len(per_voter) == 16  # every voter reviews 6, not 15
    assert set(received.values()) == {6} and len(received) == 16  # every draft reviewed 6 times
    assert all(a.voter_agent != a.target_agent for a in assignments)
    votes = fabric.votes(epoch.epoch_id)
    abstained = {a.voter_agent for a in fabric.abstentions(epoch.epoch_id)}
    assert len(votes) == 6 * (16 - len(abstained))
    assert fabric.integrity(epoch.epoch_id)["incomplete_ballots"] == 0

    # a vote outside the design is caught by the integrity check
    outside = next(a for a in agents if a.name not in {x.target_agent for x in assignments
                                                        if x.voter_agent == votes[0].voter_agent}
                   and a.name != votes[0].voter_agent)
    with fabric.connection() as conn:
        conn.execute("UPDATE peer_votes SET target_agent = %s, target_agent_id = %s"
                     " WHERE epoch_id = %s AND voter_agent = %s AND position = 0",
                     (outside.name, outside.instance_id, epoch.epoch_id, votes[0].voter_agent))
    assert fabric.integrity(epoch.epoch_id)["incomplete_ballots"] == 1

