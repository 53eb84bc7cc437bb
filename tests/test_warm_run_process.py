"""A staged run warms its fresh process before the barrier (`epoch/warm.py`): after that, the epoch's first
requests and its vote matrix load no module of the client, its transport or pandas on the clock."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

FIRST_EPOCH_WORK = textwrap.dedent("""
    import asyncio, json, sys, uuid
    from dream_pipeline.epoch.warm import warm_run_process
    from dream_pipeline.epoch.vote_matrix import vote_matrix_markdown
    from dream_pipeline.records import VoteRow
    from resources.engine_probe import EngineCapabilities
    from resources.llm import LLMEngine

    llm = LLMEngine(base_url=sys.argv[1])
    # what a run worker knows from the fabric's record: probed by another process, nothing loaded here
    llm._capabilities[(llm.resolved_base_url().rstrip("/"), llm.model)] = \
        EngineCapabilities.from_json(json.loads(sys.argv[2]))
    warm_run_process(llm)
    warmed = set(sys.modules)

    async def first_requests():
        async with llm.session(None) as session:
            await session.chat(purpose="draft", agent_name="Physicist", max_tokens=16,
                               messages=[{"role": "user", "content": "Write chapter 2 of the book."}])
            await session.embed(["a draft"], purpose="draft_embedding")

    asyncio.run(first_requests())
    a, b = uuid.uuid4(), uuid.uuid4()
    vote_matrix_markdown([VoteRow("Poet", "Physicist", a, b, 7, "", "Draft B", 1),
                          VoteRow("Physicist", "Poet", b, a, 4, "", "Draft A", 0)])
    print(json.dumps(sorted(set(sys.modules) - warmed)))
""")


def test_the_first_requests_and_tables_load_nothing_after_the_warm_up(engine_url: str):
    from resources.llm import LLMEngine

    known = json.dumps(LLMEngine(base_url=engine_url).probe_now().as_json())  # probed here, as by preflight
    out = subprocess.run([sys.executable, "-c", FIRST_EPOCH_WORK, engine_url, known], capture_output=True,
                         text=True, check=True, timeout=120)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    late = [m for m in loaded if m.split(".")[0] in {"openai", "httpx", "httpx2", "httpcore", "httpcore2", "h11",
                                                      "anyio", "jiter", "pandas", "pyarrow", "numpy"}]
    assert late == []
