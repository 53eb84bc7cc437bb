"""Text and embeddings from the offline engine, through the real client, for tests that build a book."""

from __future__ import annotations

import asyncio

from resources.llm import LLMEngine
from spica import SpicaBook


def embed_texts(llm: LLMEngine, texts: list[str]) -> list[list[float]]:
    async def run():
        async with llm.session(None) as session:
            return await session.embed(texts, purpose="test_embedding")

    return asyncio.run(run())


def persona_prose(llm: LLMEngine, count: int) -> list[str]:
    """Distractor chapters: persona prose from the engine."""
    cast = SpicaBook.load("space_time").initial_cast()

    async def run():
        async with llm.session(None) as session:
            return await asyncio.gather(*(
                session.chat(purpose="test", agent_name=None, max_tokens=300, messages=[
                    {"role": "system", "content": cast[i % len(cast)].system_prompt()},
                    {"role": "user", "content": f"Write chapter {i + 1}."},
                ])
                for i in range(count)
            ))

    return [c.text for c in asyncio.run(run())]
