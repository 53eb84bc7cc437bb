"""Does the book's memory keep a prompt flat as the book grows?

Fills a scratch fabric with chapters of synthetic prose from the offline engine (each committed as
the pipeline commits one: epoch, winning draft with its embedding, chapter, rolling summary through
the engine, Reaper commit) and, when the book reaches 10, 100 and N chapters, measures for the next
chapter: the prompt's tokens (as the engine counts them), the time to build its context (fabric
reads + pure builder: the fastest of 50 builds, which the noise of a loaded machine only ever slows, and
their median beside it), and the nearest-neighbour query on chapters with the HNSW
index and without it (`enable_indexscan = off`, a sequential scan), median of repeats.

Beyond the first 200 chapters (written as above, through the engine) the book grows in bulk SQL:
chapter n copies the epoch, winning draft, chapter and summary of chapter ((n - 1) mod 200) + 1, its
embedding jittered (generate_series, one statement per table; the HNSW indexes rebuilt once after).

Run: python -m bench.memory [--full] [--chapters N]   (fast: N = 200; --full: N = 10,000)
The RESULT's `*_1000_vs_100` keys name chapter 1,000 and `*_10000_vs_100` chapter 10,000; a book too short
for one lets its largest size stand in for it (printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence

import psycopg
from psycopg import sql

from bench.common import print_result, print_table, scratch_fabric
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.domains.book.prompts import (
    OUTLINE_CHAPTERS,
    chapter_title,
    draft_context,
    draft_messages,
    summary_messages,
)
from offline_engine import EngineConfig, running_engine
from resources.fabric import ChapterRow, DraftRow, StateFabric
from resources.fabric.memory import CHAPTERS_NEAR, SCAN_SETTINGS
from resources.fabric.rows import as_list, as_vector
from resources.llm import LLMEngine, LLMSession
from spica import SpicaBook

BOOK = "space_time"
REPEATS = 50
WINDOW = 10  # prompts averaged per book size
TEMPLATES = 200  # chapters written through the engine; later ones are bulk copies of these

# chapters lo..hi as copies of chapter ((n - 1) mod t) + 1: epoch, winning draft, chapter, summary
BULK = [
    "INSERT INTO simulation_epochs (epoch_key, book, epoch_number, active_agent_ids, status, end_time,"
    " winner_agent_id, context_chapters)"
    " SELECT %(book)s || '-' || lpad(n::text, greatest(5, length(n::text)), '0'), e.book, n, e.active_agent_ids, 'committed', now(),"
    "  e.winner_agent_id, e.context_chapters"
    " FROM generate_series(%(lo)s::int, %(hi)s::int) AS n"
    " JOIN simulation_epochs e ON e.book = %(book)s AND e.epoch_number = (n - 1) %% %(t)s::int + 1",
    "INSERT INTO drafts (epoch_id, agent_id, agent_name, text, prompt_tokens, completion_tokens, finish_reason,"
    " truncated, latency_s, embedding)"
    " SELECT e.epoch_id, d.agent_id, d.agent_name, d.text, d.prompt_tokens, d.completion_tokens, d.finish_reason,"
    "  d.truncated, d.latency_s,"
    "  (SELECT array_agg(x + (random()::real - 0.5) * 0.02) FROM unnest(d.embedding::real[]) AS x)::vector"
    " FROM simulation_epochs e"
    " JOIN chapters c ON c.book = e.book AND c.chapter_number = (e.epoch_number - 1) %% %(t)s + 1"
    " JOIN drafts d ON d.draft_id = c.draft_id"
    " WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(lo)s AND %(hi)s",
    "INSERT INTO chapters (book, chapter_number, epoch_id, draft_id, agent_id, title, text, embedding)"
    " SELECT e.book, e.epoch_number, e.epoch_id, d.draft_id, d.agent_id, c.title, d.text, d.embedding"
    " FROM simulation_epochs e JOIN drafts d USING (epoch_id)"
    " JOIN chapters c ON c.book = e.book AND c.chapter_number = (e.epoch_number - 1) %% %(t)s + 1"
    " WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(lo)s AND %(hi)s",
    "INSERT INTO book_summaries (book, chapter_number, epoch_id, summary, tokens)"
    " SELECT e.book, e.epoch_number, e.epoch_id, s.summary, s.tokens FROM simulation_epochs e"
    " JOIN book_summaries s ON s.book = e.book AND s.chapter_number = (e.epoch_number - 1) %% %(t)s + 1"
    " WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(lo)s AND %(hi)s",
]


def bulk_chapters(fabric: StateFabric, lo: int, hi: int) -> float:
    """Chapters lo..hi as jittered copies of the first TEMPLATES (see BULK); returns the seconds taken.
    The memory's HNSW indexes are dropped first and rebuilt after, as PostgreSQL printed them."""
    started = time.perf_counter()
    with fabric.connection() as conn:
        hnsw = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexdef ILIKE '%% hnsw %%'"
        ).fetchall()
        for row in hnsw:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(row["indexname"])))
        for statement in BULK:
            conn.execute(statement, {"book": BOOK, "lo": lo, "hi": hi, "t": TEMPLATES})
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for row in hnsw:
            conn.execute(row["indexdef"])
    # settle what the bulk writes left (dead tuples, hint bits, statistics, dirty pages), as autovacuum and
    # the checkpointer do for a book that grew over months; measured straight after, the first reads would
    # pay for it, and the checkpointer would write the bulk out while the builds are timed
    with psycopg.connect(fabric.url(), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) simulation_epochs, drafts, chapters, book_summaries")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def analyze_memory(fabric: StateFabric) -> None:
    """Refresh the planner's statistics of the memory's tables now (autovacuum does it in time; a
    benchmark that has just written them cannot wait)."""
    with fabric.connection() as conn:
        conn.execute("ANALYZE chapters, drafts")


def nearest_query_stats(
    fabric: StateFabric, book: str, vector: Sequence[float], k: int, *, before_number: int, scan: str = "auto"
) -> tuple[bool, float]:
    """EXPLAIN ANALYZE of the fabric's own chapter nearest-neighbour query: whether the HNSW index was
    used, and the server's execution time in ms (no connection or transfer overhead)."""
    fabric.check_dimensions([vector], "query embeddings")
    dim = sql.Literal(fabric.embedding_dim)
    query = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + CHAPTERS_NEAR.format(
        vec=sql.SQL("embedding::vector({})").format(dim), q=sql.SQL("%(q)s::vector({})").format(dim), dim=dim
    )
    with fabric.connection() as conn, conn.transaction(force_rollback=True):
        for setting in SCAN_SETTINGS[scan]:
            conn.execute(setting)
        [plan] = next(iter(conn.execute(
            query, {"q": as_vector(vector), "k": k, "p0": book, "p1": before_number}
        ).fetchone().values()))
    return "chapters_embedding_hnsw" in json.dumps(plan["Plan"]), float(plan["Execution Time"])


def _timings_ms(fn, repeats: int = REPEATS) -> list[float]:
    fn()  # warm: connection, plan, caches
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _chapter_texts(session: LLMSession, book: SpicaBook, count: int) -> list[str]:
    cast = book.initial_cast() + [book.recruit(p, replaced=book.initial_cast()[0]) for p in book.reserve()]
    replies = await asyncio.gather(*(
        session.chat(purpose="bench_chapter", agent_name=None, max_tokens=700, messages=[
            {"role": "system", "content": cast[n % len(cast)].system_prompt()},
            {"role": "user", "content": f"Write chapter {n + 1} of the book."},
        ])
        for n in range(count)
    ))
    return [r.text for r in replies]


async def _fill(fabric: StateFabric, llm: LLMEngine, count: int, checkpoints: list[int], measure) -> None:
    book = SpicaBook.load("space_time")
    fabric.ensure_book(book)
    written = min(count, TEMPLATES)
    async with llm.session(None) as session:
        started = time.perf_counter()
        texts = await _chapter_texts(session, book, written)
        vectors: list[list[float]] = []
        for i in range(0, written, 100):
            vectors += await session.embed(texts[i:i + 100], purpose="bench_embedding")
        print(f"generated and embedded {written} chapters in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        previous = None
        for n in range(1, written + 1):
            epoch = fabric.open_epoch(BOOK, epoch_key(BOOK, n), n)
            agent = fabric.agents(epoch.active_agent_ids)[n % len(epoch.active_agent_ids)]
            text = texts[n - 1]
            [draft_id] = fabric.write_drafts(epoch.epoch_id, [DraftRow(
                agent.instance_id, agent.name, text, 0, len(text.split()), "stop", False, 0.0,
                embedding=vectors[n - 1])])
            chapter = ChapterRow(n, draft_id, agent.instance_id, chapter_title(text, n), text, None, None,
                                 vectors[n - 1], author=agent.name)
            fabric.commit_chapter(epoch.epoch_id, BOOK, chapter)
            reply = await session.chat(purpose="summary", agent_name=None, max_tokens=llm.summary_tokens,
                                       messages=summary_messages(book, previous, chapter, llm.summary_tokens))
            fabric.write_summary(epoch.epoch_id, BOOK, n, reply.text.strip())
            previous = fabric.latest_summary(BOOK, n + 1)
            fabric.reap(epoch, None, None)
            session.calls.clear()  # the bench keeps no ledger
            if n in checkpoints:
                print(f"  {n} chapters committed ({time.perf_counter() - started:.1f} s); measuring", flush=True)
                await measure(n, session, vectors[n - 1])
        done = written
        for n in [c for c in checkpoints if c > written]:
            seconds = bulk_chapters(fabric, done + 1, n)
            done = n
            print(f"  {n} chapters (bulk copies after {written}: {seconds:.1f} s); measuring", flush=True)
            with fabric.connection() as conn:
                last = conn.execute("SELECT embedding FROM chapters WHERE book = %s AND chapter_number = %s",
                                    (BOOK, n)).fetchone()["embedding"]
            await measure(n, session, as_list(last))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10,000 chapters (default: 200)")
    parser.add_argument("--chapters", type=int, default=None, help="book size (overrides --full)")
    args = parser.parse_args()
    count = args.chapters or (10_000 if args.full else 200)
    checkpoints = sorted({10, 100, 1000, count} & set(range(1, count + 1)))
    if count < 100:
        raise SystemExit("--chapters must be at least 100")

    fabric = scratch_fabric("dream_bench_memory")
    print(f"book memory benchmark: {count:,} chapters"
          + ("" if count >= 10_000 else f" (chapter {count:,} stands in for chapter 10,000)"))
    rows: dict[int, dict] = {}
    book = SpicaBook.load("space_time")
    with running_engine(EngineConfig(seed=11)) as url:
        llm = LLMEngine(base_url=url, max_concurrency=16, max_retries=2, timeout_s=60)
        agent = book.initial_cast()[0]

        async def measure(n: int, session: LLMSession, last_vector: list[float]) -> None:
            def context(m: int):
                memory = fabric.book_memory(BOOK, m + 1, top_k=llm.context_top_k, outline=OUTLINE_CHAPTERS)
                return draft_context(book, memory, llm.context_tokens)

            # prompt size: mean over the prompts for the chapters after the last WINDOW sizes up to n
            # (the fabric reads only chapters before the one prompted for), so one short chapter is no trend
            window = range(max(1, n - WINDOW + 1), n + 1)
            replies = await asyncio.gather(*(
                session.chat(purpose="bench_draft", agent_name=agent.name, max_tokens=16,
                             messages=draft_messages(agent, context(m)))
                for m in window
            ))
            built = context(n)
            analyze_memory(fabric)
            knn = {}
            for scan in ("index", "exact"):
                stats = [nearest_query_stats(fabric, BOOK, last_vector, llm.context_top_k, before_number=n + 1,
                                                    scan=scan) for _ in range(30)]
                knn[scan] = statistics.median(ms for _, ms in stats)
                knn[scan + "_used_hnsw"] = stats[0][0]
            uses_hnsw, _ = nearest_query_stats(fabric, BOOK, last_vector, llm.context_top_k, before_number=n + 1)
            builds = _timings_ms(lambda: context(n))
            rows[n] = {
                "chapters": n,
                "prompt_tokens": statistics.mean(r.prompt_tokens for r in replies),
                "context_tokens": built.tokens,
                "related": ",".join(map(str, built.related)),
                "context_ms": min(builds),
                "context_ms_median": statistics.median(builds),
                "knn_ms_indexed": knn["index"],
                "knn_ms_unindexed": knn["exact"],
                "indexed_run_used_hnsw": knn["index_used_hnsw"],
                "planner_picks_hnsw": uses_hnsw,
            }

        asyncio.run(_fill(fabric, llm, count, checkpoints, measure))

    print_table(f"Next chapter's prompt at each book size (budget {llm.context_tokens} tokens, top-k "
                f"{llm.context_top_k}; prompt tokens: mean of the last {WINDOW} prompts; context_ms: fastest of "
                f"{REPEATS} builds incl. the fabric reads, context_ms_median their median; knn: server execution "
                "time, median of 30)",
                list(rows.values()))
    mid, top = rows[100], rows[count]
    thousand = rows.get(1000, top)
    figures = {
        "chapters": count,
        "prompt_tokens_ratio_1000_vs_100": round(thousand["prompt_tokens"] / mid["prompt_tokens"], 3),
        "context_ms_ratio_1000_vs_100": round(thousand["context_ms"] / mid["context_ms"], 3),
        "prompt_tokens_ratio_10000_vs_100": round(top["prompt_tokens"] / mid["prompt_tokens"], 3),
        "context_ms_ratio_10000_vs_100": round(top["context_ms"] / mid["context_ms"], 3),
        "context_ms_median_ratio_10000_vs_100": round(top["context_ms_median"] / mid["context_ms_median"], 3),
        "knn_ms_indexed": round(top["knn_ms_indexed"], 3),
        "knn_ms_unindexed": round(top["knn_ms_unindexed"], 3),
    }
    print(f"\nflat line goal: both ratios within 10% of 1 (chapter {count} vs chapter 100)")
    print_result(figures)


if __name__ == "__main__":
    main()
