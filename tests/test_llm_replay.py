"""The LLM resource's replay path: recorded answers by request hash, strict for a committed epoch,
the engine asked only for what is missing; against the real fabric and the offline engine."""

from __future__ import annotations

import asyncio

import pytest

from resources.fabric import StateFabric
from resources.llm import LLMCallError, LLMEngine
from spica import SpicaBook

KEY = "space_time-00001"
UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens on the discard port: any engine call fails
MESSAGES = [{"role": "user", "content": "Write chapter 1."}]


def _engine(fabric: StateFabric | None, url: str, **kwargs) -> LLMEngine:
    return LLMEngine(base_url=url, max_tokens=64, max_retries=0, timeout_s=10, fabric=fabric, **kwargs)


def _chat(engine: LLMEngine, key: str | None, content: str = MESSAGES[0]["content"]):
    async def go():
        async with engine.session(key) as session:
            completion = await session.chat(purpose="draft", agent_name="Poet",
                                            messages=[{"role": "user", "content": content}], max_tokens=64)
            return completion, session
    return asyncio.run(go())


def _record_one(fabric: StateFabric, engine_url: str):
    """Open epoch 1 and record one real answer for it; returns the completion."""
    fabric.ensure_book(SpicaBook.load("space_time"))
    fabric.open_epoch("space_time", KEY, 1)
    completion, session = _chat(_engine(fabric, engine_url), KEY)
    assert len(session.calls) == 1 and session.calls[0].status == "ok"
    fabric.record_llm_calls(session.calls)
    return completion


def test_nothing_recorded_nothing_replayed(fabric, engine_url):
    assert _engine(None, engine_url).recorded_calls(KEY) == (None, False, None)
    assert _engine(fabric, engine_url).recorded_calls(None) == (None, False, None)
    assert _engine(fabric, engine_url).recorded_calls(KEY) == (None, False, None)  # no such epoch yet
    completion, session = _chat(_engine(fabric, engine_url), KEY)
    assert session.recorded is None and session.strict_replay is False
    assert completion.text and len(session.calls) == 1  # the engine answered and the call is kept


def test_a_running_epoch_reuses_what_it_recorded_and_asks_for_the_rest(fabric, engine_url):
    first = _record_one(fabric, engine_url)
    # what the engine said, as the offline engine counts it: one token a word, under the cap of 64
    assert first.finish_reason in ("stop", "length") and first.prompt_tokens == 3
    assert first.completion_tokens == len(first.text.split()) > 0
    recorded, strict, seed = _engine(fabric, engine_url).recorded_calls(KEY)
    assert strict is False and seed is None and len(recorded) == 1
    again, session = _chat(_engine(fabric, UNREACHABLE), KEY)  # the engine is gone: the record answers
    assert again == first.__class__(first.text, first.finish_reason, first.prompt_tokens,
                                    first.completion_tokens, again.latency_s)
    assert session.calls == []  # a replayed answer is not recorded twice
    other, session = _chat(_engine(fabric, engine_url), KEY, "Write chapter 2.")  # not recorded: asked
    assert other.text != first.text and len(session.calls) == 1


def test_a_committed_epoch_replays_strictly(fabric, engine_url):
    first = _record_one(fabric, engine_url)
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET status = 'committed', world_seed = 4242 WHERE epoch_key = %s",
                     (KEY,))
    recorded, strict, seed = _engine(fabric, engine_url).recorded_calls(KEY)
    assert strict is True and seed == 4242 and len(recorded) == 1
    # the recorded request carried no seed, so with the world seed sent the replay finds no answer,
    # and a committed epoch never asks the engine: a clear error instead
    with pytest.raises(LLMCallError, match=r"^replay of space_time-00001: no recorded answer for a "
                                           r"offline-scribe request$"):
        _chat(_engine(fabric, engine_url), KEY)
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET world_seed = NULL WHERE epoch_key = %s", (KEY,))
    again, session = _chat(_engine(fabric, UNREACHABLE), KEY)
    assert again.text == first.text and session.calls == [] and session.strict_replay is True
    with pytest.raises(LLMCallError, match="no recorded answer"):
        _chat(_engine(fabric, engine_url), KEY, "Write chapter 2.")


def test_replay_off_asks_the_engine_again_but_keeps_the_world_seed(fabric, engine_url):
    _record_one(fabric, engine_url)
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET world_seed = 77 WHERE epoch_key = %s", (KEY,))
    engine = _engine(fabric, engine_url, replay="off")
    assert engine.recorded_calls(KEY) == (None, False, 77)
    _, session = _chat(engine, KEY)
    assert session.seed == 77 and len(session.calls) == 1 and session.calls[0].request["seed"] == 77


def test_embeddings_replay_from_the_record(fabric, engine_url):
    fabric.ensure_book(SpicaBook.load("space_time"))
    fabric.open_epoch("space_time", KEY, 1)

    async def embed(engine):
        async with engine.session(KEY) as session:
            return await session.embed(["a chapter", "another"]), session

    vectors, session = asyncio.run(embed(_engine(fabric, engine_url)))
    assert len(vectors) == 2 and len(session.calls) == 1
    fabric.record_llm_calls(session.calls)
    again, session = asyncio.run(embed(_engine(fabric, UNREACHABLE)))
    assert session.calls == []
    assert [[round(x, 6) for x in v] for v in again] == [[round(x, 6) for x in v] for v in vectors]


def test_an_answer_without_a_choice_is_an_empty_completion():
    import openai

    from resources.llm import Completion, _completion

    empty = openai.types.chat.ChatCompletion.model_validate(
        {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []})
    assert _completion(empty, 0.5) == Completion("", None, 0, 0, 0.5)
    answered = openai.types.chat.ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": None}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 64, "total_tokens": 71},
    })
    assert _completion(answered, 1.25) == Completion("", "length", 7, 64, 1.25)
