"""`dream search "text"`: the chapters and drafts nearest to a text, by embedding similarity."""

from __future__ import annotations

import argparse
import asyncio
import textwrap

DEFAULT_BOOK = "space_time"
PREVIEW_WORDS = 24


def add_search_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `search` on the `dream` command's subparsers."""
    search = subparsers.add_parser("search", help="print the chapters and drafts nearest to a text (pgvector)")
    search.add_argument("text", help="what to look for; it is embedded by the configured engine")
    search.add_argument("--book", default=DEFAULT_BOOK, help="which book (default: %(default)s)")
    search.add_argument("--limit", type=int, default=5, help="results of each kind (default: %(default)s)")
    search.set_defaults(func=cmd_search)
    return search


def cmd_search(args: argparse.Namespace) -> int:
    from dream_pipeline.settings import fabric_from_env, llm_from_env

    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    # outside a Dagster run, EnvVar fields are resolved by initializing the resources
    with (
        fabric_from_env().process_config_and_initialize_cm() as fabric,
        llm_from_env().process_config_and_initialize_cm() as llm,
    ):
        print(render_results(args.text, *_search(fabric, llm, args)))
    return 0


def _search(fabric, llm, args: argparse.Namespace):
    async def embed():
        async with llm.session(None) as session:
            try:
                return await session.embed([args.text], purpose="search_embedding")
            finally:  # the call is kept in llm_calls like any other, failed or not
                fabric.record_llm_calls(session.calls)

    [vector] = asyncio.run(embed())
    fabric.check_dimensions([vector], "search embeddings")
    return fabric.nearest_chapters(args.book, vector, args.limit), fabric.nearest_drafts(args.book, vector, args.limit)


def _preview(text: str) -> str:
    words = text.split()
    return " ".join(words[:PREVIEW_WORDS]) + (" …" if len(words) > PREVIEW_WORDS else "")


def render_results(query: str, chapters, drafts) -> str:
    """Chapters (number, title, author) and drafts (epoch, author, whether it became the chapter)."""
    lines = [f"Nearest to {query!r}:", "", "Chapters:"]
    if not chapters:
        lines.append("  (none with an embedding yet)")
    for chapter, similarity in chapters:
        lines.append(f"  {similarity:6.3f}  {chapter.chapter_number:>4}. {chapter.title} — the {chapter.author}")
        lines.append(textwrap.indent(textwrap.fill(_preview(chapter.text), 92), " " * 16))
    lines += ["", "Drafts:"]
    if not drafts:
        lines.append("  (none with an embedding yet)")
    for hit in drafts:
        canon = "  (became the chapter)" if hit.in_canon else ""
        lines.append(f"  {hit.similarity:6.3f}  epoch {hit.epoch_number:>4}, the {hit.agent_name}{canon}")
        lines.append(textwrap.indent(textwrap.fill(_preview(hit.text), 92), " " * 16))
    return "\n".join(lines)
