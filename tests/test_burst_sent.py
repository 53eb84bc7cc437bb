"""The Burst says when its requests are on their way: the opening step writes the roster's events only
then, so they take no CPU from the prompt and the requests (dead time, issue 17)."""

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
