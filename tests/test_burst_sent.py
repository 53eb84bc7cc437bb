"""The Burst and the ballots say when their requests are on their way: the opening step writes the
roster's events only once the drafts are out, and the drafts' once the ballots are, so they take no CPU
from the prompts and the requests (dead time and overhead, issue 17)."""

from __future__ import annotations

import asyncio

from dream_pipeline.epoch.burst import run_burst
from resources.llm import LLMEngine
from spica import SpicaBook


def test_on_sent_is_called_once_every_request_is_out_and_before_any_answer(llm: LLMEngine):
    agents = SpicaBook.load("space_time").initial_cast()[:3]
    seen: list[tuple[int, int]] = []

    async def burst():
        async with llm.session("sent-00001") as session:
            in_flight = len(asyncio.all_tasks())
            results = await run_burst(
                session, agents, lambda a: [{"role": "user", "content": f"Write chapter 1, {a.name}."}], 64,
                on_sent=lambda: seen.append((len(session.calls), len(asyncio.all_tasks()) - in_flight)),
            )
            return results, list(session.calls)

    results, calls = asyncio.run(burst())
    # once; no answer back yet; the three drafts' tasks were running (each up to its request)
    assert seen == [(0, 3)]
    assert len(calls) == 3 and all(r.completion is not None for r in results)


def test_a_burst_without_on_sent_still_drafts(llm: LLMEngine):
    agents = SpicaBook.load("space_time").initial_cast()[:2]

    async def burst():
        async with llm.session("sent-00002") as session:
            return await run_burst(session, agents, lambda a: [{"role": "user", "content": a.name}], 32)

    assert [r.agent.name for r in asyncio.run(burst())] == [a.name for a in agents]


def test_the_ballots_say_when_their_requests_are_out_too(llm: LLMEngine):
    """The opening step writes the drafts' events once the ballot requests are on their way."""
    from dream_pipeline.domains import load_domain
    from dream_pipeline.epoch.vote import collect_ballots
    from dream_pipeline.tournament.anonymize import plan_presentations

    book = load_domain("space_time")
    voters = book.initial_cast()[:3]
    drafts = {a.name: f"The {a.name} writes: the lighthouse keeps its own time." for a in voters}
    presentations = plan_presentations(sorted(drafts), 7, load=2)
    seen: list[tuple[int, int]] = []

    async def vote():
        async with llm.session("sent-00003") as session:
            in_flight = len(asyncio.all_tasks())
            ballots = await collect_ballots(
                session, voters, presentations, drafts, domain=book, context=book.posed(1),
                on_sent=lambda: seen.append((len(session.calls), len(asyncio.all_tasks()) - in_flight)),
            )
            return ballots, list(session.calls)

    ballots, calls = asyncio.run(vote())
    assert seen == [(0, 3)]  # once; no answer back yet; the three ballots' tasks were running
    assert len(ballots) == 3 and len(calls) >= 3
