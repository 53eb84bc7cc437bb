"""`dream search "text"`: the chapters and drafts nearest to a text, by hybrid retrieval.

Three rankings of the book are fused by reciprocal rank fusion (RRF): a phrase match and a word match
(PostgreSQL full-text search, `resources/text_search.py`) and the cosine similarity of the embeddings
(pgvector). A verbatim sentence finds the chapter it was copied from through the phrase ranking even when
its embedding ranks other chapters higher; a paraphrase finds it through the words and the embedding.
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dream_pipeline.domains.book import DEFAULT_BOOK

K = TypeVar("K")

PREVIEW_WORDS = 24


def add_search_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `search` on the `dream` command's subparsers."""
    search = subparsers.add_parser("search", help="the chapters and drafts nearest to a text (full-text and pgvector, fused)")
    search.add_argument("text", help="what to look for; it is embedded by the configured engine")
    search.add_argument("--book", default=DEFAULT_BOOK, help="which book (default: %(default)s)")
    search.add_argument("--limit", type=int, default=5, help="results of each kind (default: %(default)s)")
    search.set_defaults(func=cmd_search)
    return search


def cmd_search(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.errors import require_databases
    from dream_pipeline.config.settings import fabric_from_env, llm_from_env

    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    require_databases()  # before the engine is started or asked anything
    # outside a Dagster run, EnvVar fields are resolved by initializing the resources
    with (
        fabric_from_env().process_config_and_initialize_cm() as fabric,
        llm_from_env().process_config_and_initialize_cm() as llm,
    ):
        print(render_results(args.text, *_search(fabric, llm, args)))
    return 0


def _search(fabric, llm, args: argparse.Namespace) -> tuple[list[Fused], list[Fused]]:
    async def embed():
        async with llm.session(None, probe=False) as session:  # one embedding: no ballot mode to find
            try:
                return await session.embed([args.text], purpose="search_embedding")
            finally:  # the call is kept in llm_calls like any other, failed or not
                fabric.record_llm_calls(session.calls)

    [vector] = asyncio.run(embed())
    fabric.check_dimensions([vector], "search embeddings")
    return hybrid_search(fabric, args.book, args.text, vector, args.limit)


# ---- hybrid retrieval ------------------------------------------------------------------------------

RRF_K = 60  # the constant of Cormack et al. (2009): a list's top ranks count, its tail barely does
CANDIDATES = 20  # how deep each ranking is read (at least 4 × the results asked for)
RANKINGS = ("phrase", "words", "meaning")


@dataclass(frozen=True)
class Fused:
    """One result: its fused score, its cosine similarity to the query, the full-text rankings it is in."""

    key: Any
    score: float
    similarity: float | None
    matched: tuple[str, ...]  # of "phrase", "words"
    hit: Any  # a ChapterHit or a DraftHitRow


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[K]], k: int = RRF_K) -> list[tuple[K, float]]:
    """Keys by the sum over rankings of 1 / (k + position), best first; ties keep the order in which the
    rankings first list them. A key in no ranking is not in the result."""
    scores: dict[K, float] = {}
    for ranking in rankings.values():
        for position, key in enumerate(dict.fromkeys(ranking), start=1):  # a key counts once per ranking
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + position)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def hybrid_search(fabric, book: str, text: str, vector: Sequence[float], limit: int) -> tuple[list[Fused], list[Fused]]:
    """Chapters and drafts of `book` for `text`: the phrase ranking, the word ranking (full text) and the
    cosine ranking (pgvector) fused by reciprocal rank fusion, `limit` of each."""
    from resources.text_search import chapter_hits, draft_hits, text_rankings

    depth = max(CANDIDATES, 4 * limit)
    texts = text_rankings(fabric, book, text, depth)
    chapter_lists = {how: [key for key, _ in texts.chapters[how]] for how in ("phrase", "words")}
    chapter_lists["meaning"] = [c.chapter_number for c, _ in fabric.nearest_chapters(book, vector, depth)]
    draft_lists = {how: [key for key, _ in texts.drafts[how]] for how in ("phrase", "words")}
    draft_lists["meaning"] = [(d.epoch_key, d.agent_name) for d in fabric.nearest_drafts(book, vector, depth)]

    def fuse(lists, fetch) -> list[Fused]:
        best = reciprocal_rank_fusion(lists)[:limit]
        hits = fetch([key for key, _ in best])
        return [Fused(key, score, hits[key].similarity, tuple(h for h in ("phrase", "words") if key in lists[h]),
                      hits[key]) for key, score in best if key in hits]

    return (fuse(chapter_lists, lambda keys: chapter_hits(fabric, book, keys, vector)),
            fuse(draft_lists, lambda keys: draft_hits(fabric, book, keys, vector)))


# ---- output ----------------------------------------------------------------------------------------

SCORE_HEADER = f"{'fused':>6}  {'cosine similarity':>17}  {'text match':<10}"
SCORE_LEGEND = ("fused: reciprocal rank fusion (1/(60 + rank), summed) of the phrase match, the word match and "
                "the cosine similarity of the embeddings; text match: the query's words in order (phrase), "
                "some of its words (words), none (—)")


def _preview(text: str) -> str:
    words = text.split()
    return " ".join(words[:PREVIEW_WORDS]) + (" …" if len(words) > PREVIEW_WORDS else "")


def _scores(result: Fused) -> str:
    similarity = "—" if result.similarity is None else f"{result.similarity:.3f}"
    matched = result.matched[0] if result.matched else "—"
    return f"{result.score:6.4f}  {similarity:>17}  {matched:<10}"


def render_results(query: str, chapters: Sequence[Fused], drafts: Sequence[Fused]) -> str:
    """Chapters (number, title, author) and drafts (epoch, author, whether it became the chapter), best first."""
    lines = [f"Nearest to {query!r}, best first:", textwrap.fill(SCORE_LEGEND, 100), "", "Chapters:",
             f"  {SCORE_HEADER}  chapter"]
    if not chapters:
        lines.append("  (none found)")
    for result in chapters:
        hit = result.hit
        lines.append(f"  {_scores(result)}  {hit.chapter_number:>4}. {hit.title} — the {hit.author}")
        lines.append(textwrap.indent(textwrap.fill(_preview(hit.text), 92), " " * 8))
    lines += ["", "Drafts:", f"  {SCORE_HEADER}  draft"]
    if not drafts:
        lines.append("  (none found)")
    for result in drafts:
        hit = result.hit
        canon = "  (became the chapter)" if hit.in_canon else ""
        lines.append(f"  {_scores(result)}  epoch {hit.epoch_number:>4}, the {hit.agent_name}{canon}")
        lines.append(textwrap.indent(textwrap.fill(_preview(hit.text), 92), " " * 8))
    return "\n".join(lines)
