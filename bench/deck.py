"""How quick are the deck's views on a long book? Query time per view with 10,000 synthetic epochs.

A scratch database (`dream_bench_deck`) is filled in bulk SQL (one INSERT ... SELECT over
generate_series per table, no round trip per row) with a consistent synthetic book: a roster of 6
per epoch, the oldest agent eliminated each epoch and replaced (reserve personas, then mutations),
6 drafts with 256-dimensional embeddings, 30 votes, 6 ratings with intervals, a chapter, 13 engine
calls, and a few abstentions and voter flags per epoch. The last epoch is still running.

Each view's queries are then run exactly as the deck runs them for one render, as the read-only
`dream_reader` role on one open connection, repeated; the table shows p50/p95/max per view, and the
RESULT line's `p95_query_ms` is the slowest view's p95.

Run: python -m bench.deck [--full] [--epochs N] [--repeats N] [--reuse]
(fast: 10,000 epochs, 15 renders per view; --full: 100,000 epochs, 60 renders per view; the RESULT's
`p95_query_ms_100k` is the slowest view's p95 on 100,000 epochs or more, null on fewer). `--reuse`
measures the scratch database an earlier run filled, as it is (after applying any new migration), instead
of filling it again: the 100,000-epoch fill takes 25–35 minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from bench.common import print_result, print_table, scratch_fabric
from deck import queries
from resources import embedded_postgres
from resources.fabric import StateFabric

BOOK = "space_time"
SCRATCH = "dream_bench_deck"
ROSTER = 6
RESERVE = 9
DIMS = 256

# One statement per table; %(n)s is the number of epochs. Agent k (1..n+ROSTER) sits in epochs
# k-ROSTER+1..k; epoch e's roster is agents e..e+ROSTER-1, its loser agent e, replaced by agent e+ROSTER.
FILL = [
    "INSERT INTO domains (domain_id, instance_id, kind, manifest)"
    " VALUES ('space_time', gen_random_uuid(), 'book', '{\"title\": \"bench\"}')",
    "INSERT INTO agents (agent_id, book, name, persona, manifest, alive, generation, parent_agent_id,"
    " replaced_agent_id, origin, joined_epoch, retired_epoch)"
    " SELECT md5('agent' || k)::uuid, 'space_time', 'Agent ' || k, 'A synthetic persona number ' || k, '{}',"
    "  k > %(n)s, CASE WHEN k > %(roster)s + %(reserve)s THEN 1 ELSE 0 END,"
    "  CASE WHEN k > %(roster)s + %(reserve)s THEN md5('agent' || (k - %(roster)s + 1))::uuid END,"
    "  CASE WHEN k > %(roster)s THEN md5('agent' || (k - %(roster)s))::uuid END,"
    "  CASE WHEN k <= %(roster)s THEN 'cast' WHEN k <= %(roster)s + %(reserve)s THEN 'reserve'"
    "   ELSE 'mutation' END,"
    "  greatest(1, k - %(roster)s + 1), CASE WHEN k <= %(n)s THEN k END"
    " FROM generate_series(1::bigint, %(n)s::bigint + %(roster)s) AS k",
    "INSERT INTO simulation_epochs (epoch_id, epoch_key, book, epoch_number, start_time, end_time,"
    " active_agent_ids, winner_agent_id, loser_agent_id, status, bottom_separated)"
    " SELECT md5('epoch' || e)::uuid, 'space_time-' || lpad(e::text, greatest(5, length(e::text)), '0'), 'space_time', e,"
    "  timestamptz '2026-01-01' + e * interval '3.2 s',"
    "  CASE WHEN e < %(n)s THEN timestamptz '2026-01-01' + e * interval '3.2 s' + interval '3 s' END,"
    "  ARRAY(SELECT md5('agent' || k)::uuid FROM generate_series(e, e + %(roster)s - 1) AS k),"
    "  CASE WHEN e < %(n)s THEN md5('agent' || (e + 1 + e %% (%(roster)s - 1)))::uuid END,"
    "  CASE WHEN e < %(n)s THEN md5('agent' || e)::uuid END,"
    "  CASE WHEN e < %(n)s THEN 'committed' ELSE 'running' END,"
    "  CASE WHEN e < %(n)s THEN e %% 3 = 0 END"
    " FROM generate_series(1::bigint, %(n)s::bigint) AS e",
    "INSERT INTO drafts (draft_id, epoch_id, agent_id, agent_name, text, prompt_tokens, completion_tokens,"
    " finish_reason, truncated, latency_s, latency_penalty, penalty, embedding)"
    " SELECT md5('draft' || e || '-' || k)::uuid, md5('epoch' || e)::uuid, md5('agent' || k)::uuid,"
    "  'Agent ' || k, 'Chapter ' || e || ' by Agent ' || k || '. ' || repeat(md5(e || '-' || k) || ' ', 40),"
    "  900, 400 + (e * k) %% 500, CASE WHEN (e + k) %% 50 = 0 THEN 'length' ELSE 'stop' END,"
    "  (e + k) %% 50 = 0, 0.5 + ((e * 7 + k) %% 30) / 10.0, 0, 0,"
    "  (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, %(dims)s) WHERE e > 0)::vector"
    " FROM generate_series(1::bigint, %(n)s::bigint) AS e, generate_series(e, e + %(roster)s - 1) AS k",
    "INSERT INTO peer_votes (epoch_id, voter_agent, target_agent, insight_score, rationale, masked_label,"
    " position, voter_agent_id, target_agent_id)"
    " SELECT md5('epoch' || e)::uuid, 'Agent ' || v, 'Agent ' || t, 1 + (e * 31 + v * 7 + t * 3) %% 10,"
    "  'Synthetic rationale: the draft by a masked author reads ' || ((e + v + t) %% 10) || ' out of ten.',"
    "  'Anonymous_Archivist_' || (1 + (e + v * 13 + t) %% 99), (t - v - 1 + %(roster)s) %% %(roster)s,"
    "  md5('agent' || v)::uuid, md5('agent' || t)::uuid"
    " FROM generate_series(1::bigint, %(n)s::bigint) AS e, generate_series(e, e + %(roster)s - 1) AS v,"
    "  generate_series(e, e + %(roster)s - 1) AS t WHERE v <> t",
    "INSERT INTO elo_ratings (epoch_id, agent_id, agent_name, rating_before, rating_after, epoch_score, penalty,"
    " rank, bt_rating, bt_lower, bt_upper)"
    " SELECT md5('epoch' || e)::uuid, md5('agent' || k)::uuid, 'Agent ' || k,"
    "  1000 + 60 * sin(k + (e - 1) / 9.0), 1000 + 60 * sin(k + e / 9.0), 5 + 4 * cos(e + k), 0, k - e + 1,"
    "  1000 + 50 * sin(k + e / 9.0), 1000 + 50 * sin(k + e / 9.0) - 70, 1000 + 50 * sin(k + e / 9.0) + 70"
    " FROM generate_series(1::bigint, %(n)s::bigint - 1) AS e, generate_series(e, e + %(roster)s - 1) AS k",
    "INSERT INTO chapters (book, chapter_number, epoch_id, draft_id, agent_id, title, text, epoch_score, margin,"
    " embedding)"
    " SELECT 'space_time', s.epoch_number, s.epoch_id, d.draft_id, d.agent_id, 'The Chapter of Epoch '"
    "  || s.epoch_number, d.text, 7.5, 0.25, d.embedding"
    " FROM simulation_epochs s JOIN drafts d ON d.epoch_id = s.epoch_id AND d.agent_id = s.winner_agent_id",
    "INSERT INTO vote_abstentions (epoch_id, voter_agent, reason)"
    " SELECT md5('epoch' || e)::uuid, 'Agent ' || e, 'not_json' FROM generate_series(1::bigint, %(n)s::bigint) AS e"
    " WHERE e %% 97 = 0",
    "INSERT INTO voter_flags (epoch_id, kind, voter_agent, partner, strength)"
    " SELECT md5('epoch' || e)::uuid, CASE WHEN e %% 2 = 0 THEN 'outlier' ELSE 'clique' END, 'Agent ' || (e + 1),"
    "  CASE WHEN e %% 2 = 0 THEN '' ELSE 'Agent ' || (e + 2) END, 2.5"
    " FROM generate_series(1::bigint, %(n)s::bigint) AS e WHERE e %% 20 = 0",
    "INSERT INTO llm_calls (epoch_key, purpose, agent_name, request_hash, request, response, prompt_tokens,"
    " completion_tokens, latency_s, status)"
    " SELECT 'space_time-' || lpad(e::text, greatest(5, length(e::text)), '0'), p.purpose,"
    "  CASE WHEN p.purpose = 'embedding' THEN NULL ELSE 'Agent ' || k END, md5(e || p.purpose || k), '{}', '{}',"
    "  900, 400, 0.8, CASE WHEN (e + k) %% 200 = 0 THEN 'error' ELSE 'ok' END"
    " FROM generate_series(1::bigint, %(n)s::bigint) AS e, generate_series(e, e + %(roster)s - 1) AS k,"
    "  (VALUES ('draft'), ('ballot'), ('embedding')) AS p(purpose)"
    " WHERE p.purpose <> 'embedding' OR k = e",
    # what the Reaper writes in each commit (sql/018_epoch_timing.sql): the deck's timing summary reads it
    "SELECT record_epoch_timings('space_time', 1, %(n)s)",
]


def fill(url: str, epochs: int) -> dict[str, float]:
    """Fill in bulk. The fabric's HNSW indexes on the embeddings are dropped first and rebuilt after
    (as they were defined): one bulk build is much faster than 70,000 single inserts into the graph."""
    params = {"n": epochs, "roster": ROSTER, "reserve": RESERVE, "dims": DIMS}
    timings = {}
    with psycopg.connect(url) as conn:
        hnsw = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexdef ILIKE '%% hnsw %%'"
        ).fetchall()
        for name, _ in hnsw:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        for statement in FILL:
            table = statement.split()[2] if statement.startswith("INSERT") else "epoch_timing"
            started = time.perf_counter()
            conn.execute(statement, params)
            timings[table] = time.perf_counter() - started
        conn.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        for _, definition in hnsw:
            conn.execute(definition)  # the definition PostgreSQL itself printed for the index
        timings["hnsw indexes"] = time.perf_counter() - started
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    return timings


def reused_fabric(name: str) -> StateFabric:
    """The scratch database `name` as an earlier run left it (or DREAM_BENCH_DATABASE_URL), never recreated."""
    explicit = os.environ.get("DREAM_BENCH_DATABASE_URL")
    return StateFabric(database_url=explicit or embedded_postgres.server_url(name))


def reuse(fabric: StateFabric) -> int:
    """Apply the migrations not yet in the filled database (a new one backfills what it adds), refresh the
    planner's statistics, and return how many epochs the book has; refuse an empty database."""
    try:
        applied = fabric.migrate()
    except psycopg.OperationalError as exc:
        raise SystemExit(f"bench.deck --reuse: no filled database to reuse ({exc}); run without --reuse first") from None
    with psycopg.connect(fabric.url(), autocommit=True) as conn:
        conn.execute("ANALYZE")
        epochs = conn.execute("SELECT count(*) FROM simulation_epochs WHERE book = %s", (BOOK,)).fetchone()[0]
    if not epochs:
        raise SystemExit("bench.deck --reuse: the scratch database has no epochs; run without --reuse first") from None
    print(f"reusing {epochs:,} filled epochs" + (f" (applied {', '.join(applied)})" if applied else ""))
    return epochs


def view_renders(book: str) -> dict[str, Callable[[psycopg.Connection], int]]:
    """Each view's queries for one render, as the deck issues them in its default state (plus the
    heaviest choices a reader can make: the whole book's range, the first page, a deep page)."""

    def app(conn) -> None:
        queries.books(conn)

    def matrix(conn) -> int:
        app(conn)
        latest = queries.latest_epoch(conn, book)
        queries.vote_cells(conn, latest["epoch_id"])
        queries.roster(conn, latest["epoch_id"])
        middle = queries.epoch(conn, book, latest["epoch_number"] // 2)
        queries.vote_cells(conn, middle["epoch_id"])
        queries.roster(conn, middle["epoch_id"])
        return 7

    def chopping(conn) -> int:
        app(conn)
        queries.latest_epoch(conn, book)
        rated = queries.latest_rated_epoch(conn, book)
        queries.standings(conn, book, rated["epoch_id"])
        queries.recent_eliminations(conn, book)
        return 5

    def ratings(first_of: Callable[[int], int]) -> Callable[[psycopg.Connection], int]:
        def render(conn) -> int:
            app(conn)
            last = queries.latest_epoch(conn, book)["epoch_number"]
            first = first_of(last)
            queries.rating_history(conn, book, first, last)
            queries.arrivals_and_eliminations(conn, book, first, last)
            return 4
        return render

    def the_book(page_of: Callable[[int], int]) -> Callable[[psycopg.Connection], int]:
        def render(conn) -> int:
            app(conn)
            count = queries.chapter_count(conn, book)
            from deck.views.book import book_page

            first, last = book_page(count, page_of(count))
            frame = queries.chapters(conn, book, first, last)
            queries.multiverse(conn, frame["epoch_id"].iloc[-1])
            return 4
        return render

    def lineage(offset_of: Callable[[int], int]) -> Callable[[psycopg.Connection], int]:
        def render(conn) -> int:
            app(conn)
            total = int(queries.lineage_summary(conn, book)["agents"].sum())
            queries.lineage_shares(conn, book)
            queries.lineage(conn, book, offset_of(total), 25, total=total)
            names = queries.agent_names(conn, book, "")
            queries.ancestry(conn, book, names[0])
            return 6
        return render

    def telemetry(window: int) -> Callable[[psycopg.Connection], int]:
        def render(conn) -> int:
            app(conn)
            last = queries.latest_epoch(conn, book)["epoch_number"]
            first = max(1, last - window + 1)
            queries.timing_summary(conn, book)
            queries.epoch_telemetry(conn, book, first, last)
            queries.agent_telemetry(conn, book, first, last)
            queries.flags(conn, book, first, last)
            return 6
        return render

    def similar(conn) -> int:
        app(conn)
        latest = queries.latest_epoch(conn, book)
        drafts = queries.epoch_drafts(conn, book, latest["epoch_number"])
        draft_id = drafts["draft_id"].iloc[0]
        queries.draft(conn, draft_id)
        queries.similar_drafts(conn, draft_id)
        queries.similar_chapters(conn, draft_id)
        return 6

    return {
        "matrix (live + a committed epoch)": matrix,
        "chopping block": chopping,
        "ratings (latest 100 epochs)": ratings(lambda last: max(1, last - 99)),
        "ratings (whole book)": ratings(lambda last: 1),
        "book (latest page + multiverse)": the_book(lambda count: 1),
        "book (first page + multiverse)": the_book(lambda count: -(-count // 5)),
        "lineage (latest arrivals)": lineage(lambda total: 0),
        "lineage (last page)": lineage(lambda total: max(0, total - 25)),
        "telemetry (latest 50 epochs)": telemetry(50),
        "telemetry (1,000 epochs)": telemetry(queries.MAX_WINDOW),
        "similar drafts (pgvector)": similar,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="100,000 epochs, more renders per view")
    parser.add_argument("--epochs", type=int, default=None, help="default 10,000 (--full: 100,000)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="measure the database an earlier run filled (migrated first), without refilling it")
    args = parser.parse_args(argv)
    repeats = args.repeats or (60 if args.full else 15)

    if args.reuse:
        fabric = reused_fabric(SCRATCH)
        args.epochs, fill_s = reuse(fabric), None
    else:
        args.epochs = args.epochs or (100_000 if args.full else 10_000)
        fabric = scratch_fabric(SCRATCH)
        fabric.migrate()
        started = time.perf_counter()
        fill_times = fill(fabric.url(), args.epochs)
        fill_s = round(time.perf_counter() - started, 1)
        print(f"filled {args.epochs:,} epochs in {fill_s:.1f} s"
              f" ({', '.join(f'{t} {s:.1f} s' for t, s in fill_times.items())})")

    url = queries.reader_url(fabric.url())
    connects = []
    for _ in range(5):
        t0 = time.perf_counter()
        with queries.connect(url):
            pass
        connects.append((time.perf_counter() - t0) * 1000)

    rows, p95s = [], {}
    with queries.connect(url) as conn:
        counts = {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]  # noqa: S608 — fixed names
                  for t in ("simulation_epochs", "agents", "drafts", "peer_votes", "chapters", "llm_calls")}
        for name, render in view_renders(BOOK).items():
            render(conn)  # warm the cache once, as a page that stays open would be
            samples, n_queries = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                n_queries = render(conn)
                samples.append((time.perf_counter() - t0) * 1000)
            p95s[name] = percentile(samples, 0.95)
            rows.append({"view": name, "queries": n_queries, "p50_ms": statistics.median(samples),
                         "p95_ms": p95s[name], "max_ms": max(samples)})
    print_table("rows in the scratch fabric", [counts])
    print_table(f"deck query time per view render ({repeats} renders each, read-only role, one connection)", rows)
    print(f"\nopening a read-only connection: p50 {statistics.median(connects):.1f} ms")
    slowest = max(p95s, key=p95s.get)
    print_result({
        "p95_query_ms": round(p95s[slowest], 2),
        "p95_query_ms_100k": round(p95s[slowest], 2) if args.epochs >= 100_000 else None,
        "slowest_view": slowest,
        "epochs": args.epochs,
        "renders_per_view": repeats,
        "per_view_p95_ms": {k: round(v, 2) for k, v in p95s.items()},
        "connect_p50_ms": round(statistics.median(connects), 2),
        "fill_s": fill_s,
        "reused": args.reuse,
    })


if __name__ == "__main__":
    main()
