"""The offline engine's profiles behave like the servers they stand for, over HTTP through `openai`."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from offline_engine import EngineConfig, running_engine

BALLOT_PROMPT = 'Review.\n<draft id="Anonymous_Probe_1">\nThe furnace burned all night. It was warm.\n</draft>\n'
SCHEMA = {  # the enum names another label than the prompt: only a constrained reply uses it
    "type": "object",
    "properties": {"votes": {"type": "array", "items": {"type": "object", "properties": {
        "draft_id": {"type": "string", "enum": ["Anonymous_Probe_2"]},
        "insight_score": {"type": "integer"}, "rationale": {"type": "string"}}}}},
}


def _http(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - the engine on 127.0.0.1
        return json.loads(reply.read())


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="any", max_retries=0, timeout=10)


def _ask(client: openai.OpenAI, content: str = BALLOT_PROMPT, max_tokens: int = 200, **kwargs):
    return client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}], max_tokens=max_tokens, **kwargs
    )


def _labels(reply: str) -> list[str]:
    return [v["draft_id"] for v in json.loads(reply)["votes"]]


@pytest.fixture(scope="module")
def engines():
    with running_engine(EngineConfig(profile="llama_cpp_python")) as lcp, \
            running_engine(EngineConfig(profile="vllm")) as vllm, \
            running_engine(EngineConfig(profile="ollama")) as ollama, \
            running_engine(EngineConfig(profile="bare")) as bare, \
            running_engine(EngineConfig(profile="llama_cpp")) as lcpp:
        yield {"llama_cpp_python": lcp, "vllm": vllm, "ollama": ollama, "bare": bare, "llama_cpp": lcpp}


def test_llama_cpp_python_refuses_json_schema_and_honours_json_object_with_a_schema(engines):
    client = _client(engines["llama_cpp_python"])
    with pytest.raises(openai.InternalServerError, match="Input should be 'text' or 'json_object'"):
        _ask(client, response_format={"type": "json_schema", "json_schema": {"name": "b", "schema": SCHEMA}})
    reply = _ask(client, response_format={"type": "json_object", "schema": SCHEMA})
    assert _labels(reply.choices[0].message.content) == ["Anonymous_Probe_2"]
    plain = _ask(client, response_format={"type": "json_object"})  # unconstrained: it follows the prompt
    assert "Anonymous_Probe_1" in plain.choices[0].message.content


def test_llama_cpp_python_context_is_2048_tokens_and_it_serves_no_embeddings(engines):
    client = _client(engines["llama_cpp_python"])
    with pytest.raises(openai.BadRequestError, match="exceed context window of 2048"):
        _ask(client, content="word " * 2100, max_tokens=10)
    near = _ask(client, content="Write. " + "word " * 1990, max_tokens=500)  # the context ends first
    assert near.choices[0].finish_reason == "length" and near.usage.completion_tokens == 2048 - 1991
    with pytest.raises(openai.InternalServerError, match="embedding=True"):
        client.embeddings.create(model="m", input=["a text"])


def test_vllm_lists_its_context_and_constrains_guided_json(engines):
    url = engines["vllm"]
    card = _http(f"{url}/models")["data"][0]
    assert card["max_model_len"] == 8192
    client = _client(url)
    reply = _ask(client, extra_body={"guided_json": SCHEMA})
    assert _labels(reply.choices[0].message.content) == ["Anonymous_Probe_2"]
    with pytest.raises(openai.BadRequestError, match="maximum context length is 8192"):
        _ask(client, content="word " * 8000, max_tokens=500)
    with pytest.raises(openai.BadRequestError, match="Embeddings"):
        client.embeddings.create(model="m", input=["a text"])


def test_ollama_constrains_format_and_truncates_a_long_prompt_silently(engines):
    url = engines["ollama"]
    client = _client(url)
    reply = _ask(client, extra_body={"format": SCHEMA})
    assert _labels(reply.choices[0].message.content) == ["Anonymous_Probe_2"]
    unconstrained = _ask(client, response_format={"type": "json_schema", "json_schema": {"name": "b", "schema": SCHEMA}})
    assert "Anonymous_Probe_2" not in unconstrained.choices[0].message.content
    long = _ask(client, content="word " * 3000 + BALLOT_PROMPT, max_tokens=50)
    assert long.usage.prompt_tokens == 2048  # no error: the prompt's beginning is gone
    stats = _http(f"{url}/engine/stats")
    assert stats["profile"]["silent_truncations"] == 1
    show = _http(url.removesuffix("/v1") + "/api/show", {"model": "m"})
    assert show["model_info"]["llama.context_length"] == 131072
    assert len(client.embeddings.create(model="m", input=["a text"]).data) == 1


def test_llama_cpp_server_reports_n_ctx_in_props(engines):
    props = _http(engines["llama_cpp"].removesuffix("/v1") + "/props")
    assert props["default_generation_settings"]["n_ctx"] == 4096


def test_bare_refuses_structured_output_and_answers_a_ballot_prompt_in_prose_or_fences(engines):
    client = _client(engines["bare"])
    with pytest.raises(openai.BadRequestError, match="response_format"):
        _ask(client, response_format={"type": "json_object"})
    replies = [
        _ask(client, content=BALLOT_PROMPT.replace("warm", f"warm {i}")).choices[0].message.content
        for i in range(12)
    ]
    assert all("Anonymous_Probe_1" in r for r in replies)
    assert any(r.lstrip().startswith("```") for r in replies)  # some in a code fence
    assert any(not r.lstrip().startswith(("{", "```")) for r in replies)  # some inside prose


def test_default_profile_is_unchanged_openai_like():
    assert EngineConfig().profile == "openai"
    assert EngineConfig.from_env({"DREAM_ENGINE_PROFILE": "ollama"}).profile == "ollama"
    with pytest.raises(ValueError, match="unknown profile"):
        EngineConfig.from_env({"DREAM_ENGINE_PROFILE": "tgi"})
