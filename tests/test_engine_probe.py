"""The engine probe finds each server's structured-output mode, context, embeddings and concurrency,
over HTTP through the real `openai` client (the offline engine's profiles stand for the servers)."""

from __future__ import annotations

import asyncio

import openai
import pytest

from offline_engine import EngineConfig, running_engine
from resources.engine_probe import (
    VOTE_MODES,
    EngineCapabilities,
    about_format,
    concurrency_from,
    context_in_error,
    measure_concurrency,
    probe_engine,
)
from resources.llm import LLMEngine


def _probe(url: str, **kwargs) -> EngineCapabilities:
    async def run() -> EngineCapabilities:
        client = openai.AsyncOpenAI(base_url=url, api_key="any", max_retries=0, timeout=20)
        try:
            return await probe_engine(client, base_url=url, model="offline-scribe", **kwargs)
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("profile", "mode", "context", "source", "embeddings"),
    [
        ("openai", "json_schema", 4096, "a 4096-word prompt fits (at least)", True),
        ("vllm", "json_schema", 8192, "/v1/models max_model_len", False),
        ("llama_cpp_python", "json_object_schema", 2048, "the server's answer to an oversized prompt", False),
        ("llama_cpp", "json_schema", 4096, "/props n_ctx", False),
        ("ollama", "ollama_format", 2048, "Ollama's default num_ctx (/api/show sets none)", True),
        ("bare", "prompt_only", 4096, "the server's answer to an oversized prompt", False),
    ],
)
def test_probe_finds_what_each_server_can_do(profile, mode, context, source, embeddings):
    with running_engine(EngineConfig(profile=profile)) as url:
        caps = _probe(url)
    assert caps.vote_mode == mode
    assert (caps.context_tokens, caps.context_source) == (context, source)
    assert caps.embeddings is embeddings
    assert caps.truncates_silently is (profile == "ollama")
    # every better mode was tried and refused, with the reason
    assert set(caps.modes_refused) == set(VOTE_MODES[: VOTE_MODES.index(mode)]) - {"prompt_only"}
    assert EngineCapabilities.from_json(caps.as_json()) == caps


def test_ollama_ignoring_a_json_schema_is_not_taken_for_honouring_it():
    with running_engine(EngineConfig(profile="ollama")) as url:
        caps = _probe(url)
    assert "not held to the schema" in caps.modes_refused["json_schema"]
    assert caps.modes_refused["json_object_schema"].startswith("accepted, but")


def test_a_configured_context_is_used_when_the_server_does_not_say():
    with running_engine(EngineConfig(profile="llama_cpp_python")) as url:
        caps = _probe(url, configured_context=3000)
    assert (caps.context_tokens, caps.context_source) == (3000, "DREAM_LLM_CONTEXT_TOKENS")


def test_a_server_that_runs_one_request_at_a_time_is_measured_so():
    with running_engine(EngineConfig(profile="llama_cpp_python", ttft_s=0.1)) as url:
        caps = _probe(url, forced_mode="json_object_schema")
    assert caps.concurrency == 1
    assert caps.modes_refused == {}  # a forced mode is tried alone, and it works here


def test_a_slow_batch_does_not_cap_a_server_that_runs_requests_together():
    # seed 3 at a 25 % "timeout" fault rate stalls the 5th and 6th requests for 2 s, both in the first
    # batch of four (requests 3-6, after two single ones), and none of the second (7-10): the first batch
    # looks as if its requests had run about one at a time (4 x 1 s over 3 s), as on a loaded machine
    config = EngineConfig(seed=3, ttft_s=1.0, tokens_per_s=0, fault_rate=0.25, fault_kinds=("timeout",), stall_s=2.0)

    async def run(url: str) -> int | None:
        client = openai.AsyncOpenAI(base_url=url, api_key="any", max_retries=0, timeout=20)
        try:
            return await measure_concurrency(client, "offline-scribe")
        finally:
            await client.close()

    with running_engine(config) as url:
        assert asyncio.run(run(url)) is None  # the default profile runs every request at once


def test_the_fastest_batch_decides_the_concurrency():
    # one request takes 1 s; four together in 1.1 s ran together, in 4.2 s one after the other
    assert concurrency_from(1.0, [1.1]) is None
    assert concurrency_from(1.0, [4.2]) == 1
    assert concurrency_from(1.0, [2.1]) == 2  # two at a time: two waves
    assert concurrency_from(1.0, [4.2, 1.1, 3.0]) is None  # a busy machine only ever slows a batch down
    assert concurrency_from(1.0, [4.5, 4.1, 4.3]) == 1
    assert concurrency_from(0.01, [0.04]) is None  # too fast to tell
    assert concurrency_from(1.0, []) is None


def test_error_messages_are_read_for_context_and_format():
    assert context_in_error("Requested tokens (4103) exceed context window of 2048") == 2048
    assert context_in_error("This model's maximum context length is 8192 tokens. However, you requested 9000") == 8192
    assert context_in_error("Simulated server error 500") is None
    assert about_format("1 validation error ... Input should be 'text' or 'json_object'")
    assert about_format("response_format is not supported by this server")
    assert not about_format("Simulated server error 500 from the offline engine.")
    assert not about_format("Requested tokens (4103) exceed context window of 2048")


def test_faults_during_the_probe_do_not_downgrade_the_mode():
    # a 30 % fault rate: 5xx, empty and cut replies come and go; the server still honours json_schema
    config = EngineConfig(seed=1, fault_rate=0.3, fault_kinds=("500", "503", "empty", "malformed_json"))
    with running_engine(config) as url:
        caps = _probe(url)
    assert caps.vote_mode == "json_schema" and caps.modes_refused == {}


def test_known_capabilities_are_answered_without_a_client_or_an_event_loop(llm, fabric):
    probed = llm.probe_now()  # probed once and stored in the fabric
    # a new process's resource (a staged run) finds them in the fabric; asked from inside a running
    # event loop, as a session's code would, it must not start a loop or build a client of its own
    fresh = LLMEngine(base_url=llm.base_url, fabric=fabric)

    async def inside_a_loop() -> EngineCapabilities:
        return fresh.probe_now()

    assert asyncio.run(inside_a_loop()) == probed
    assert fresh.memory_mode(None) == "vectors" and fresh.served_context() == probed.served_context
