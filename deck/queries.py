"""The deck's one window on the state fabric: read-only, parameterized SQL, one function per question.

Every query is bounded by the question it answers (one epoch, one page, one window of epochs, the
top few agents), so the deck stays quick however long the book grows: aggregation and pagination
happen in PostgreSQL, never in the page. The deck connects as the `dream_reader` role
(`sql/004_deck_reader.sql`) and opens its connections read-only as well.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dream_pipeline.tournament import diversity

READER_ROLE = "dream_reader"
URL_VARIABLE = "DREAM_DECK_DATABASE_URL"
STATEMENT_TIMEOUT_MS = 15_000
MAX_WINDOW = 1_000  # epochs a per-epoch view reads at once
# the root persona an agent of `agents a` descends from, as the Reaper reads it (its `lineage_root`): a
# mutation keeps its root's name as `base_name`
LINEAGE_ROOT = sql.SQL("coalesce(a.manifest->>'base_name', a.name)")


class DeckSetupError(RuntimeError):
    """The deck cannot tell which database to read; the message says what to set."""


# ---- connecting ---------------------------------------------------------------------------------


def reader_url(url: str) -> str:
    """`url` with its user replaced by the read-only role (and any password dropped)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{READER_ROLE}@{host}"))


def database_url() -> str:
    """DREAM_DECK_DATABASE_URL, else the embedded server's fabric database as `dream_reader`."""
    explicit = os.environ.get(URL_VARIABLE)
    if explicit:
        return explicit
    if os.environ.get("DREAM_DATABASE_URL"):
        raise DeckSetupError(
            f"The fabric is on an external server (DREAM_DATABASE_URL is set): set {URL_VARIABLE} to a URL "
            f"for the {READER_ROLE} role on that server, with its password from the environment."
        )
    from resources import embedded_postgres  # only the embedded default needs the server

    return reader_url(embedded_postgres.server_url(embedded_postgres.FABRIC_DATABASE))


@contextmanager
def connect(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A read-only connection: the role can only SELECT, and the session refuses writes too."""
    with psycopg.connect(url or database_url(), row_factory=dict_row, connect_timeout=10) as conn:
        conn.read_only = True
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(STATEMENT_TIMEOUT_MS),))
        yield conn
        conn.rollback()  # nothing to commit: end the read transaction


def _frame(conn: psycopg.Connection, query: str | sql.Composable, params: dict[str, Any] | None = None) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(query, params)
        columns = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _row(conn: psycopg.Connection, query: str | sql.Composable, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    return conn.execute(query, params).fetchone()


def clamp_window(first: int, last: int, limit: int = MAX_WINDOW) -> tuple[int, int]:
    """A window of at most `limit` epochs ending at `last`."""
    first, last = min(first, last), max(first, last)
    return max(first, last - limit + 1), last


# ---- books and epochs ---------------------------------------------------------------------------


def books(conn: psycopg.Connection) -> pd.DataFrame:
    """Every book with its kind (which views the deck shows for it) and its latest epoch number, the most
    recently active first."""
    return _frame(
        conn,
        "SELECT d.domain_id AS book, d.kind,"
        " (SELECT max(e.epoch_number) FROM simulation_epochs e WHERE e.book = d.domain_id) AS last_epoch"
        " FROM domains d ORDER BY last_epoch DESC NULLS LAST, d.domain_id",
    )


_EPOCH_SELECT = sql.SQL(
    "SELECT e.epoch_id, e.epoch_key, e.epoch_number, e.status, e.start_time, e.end_time,"
    " e.bottom_separated, cardinality(e.active_agent_ids) AS roster_size,"
    " w.name AS winner, l.name AS loser"
    " FROM simulation_epochs e"
    " LEFT JOIN agents w ON w.agent_id = e.winner_agent_id"
    " LEFT JOIN agents l ON l.agent_id = e.loser_agent_id "
)


def latest_epoch(conn: psycopg.Connection, book: str) -> dict[str, Any] | None:
    query = sql.SQL("{} WHERE e.book = %(book)s ORDER BY e.epoch_number DESC LIMIT 1").format(_EPOCH_SELECT)
    return _row(conn, query, {"book": book})


def epoch(conn: psycopg.Connection, book: str, number: int) -> dict[str, Any] | None:
    query = sql.SQL("{} WHERE e.book = %(book)s AND e.epoch_number = %(number)s").format(_EPOCH_SELECT)
    return _row(conn, query, {"book": book, "number": number})


def current_epoch_number(latest: dict[str, Any] | None) -> int:
    """The epoch being played: the latest one until it commits, then the next."""
    if latest is None:
        return 1
    return latest["epoch_number"] + (1 if latest["status"] == "committed" else 0)


# ---- the voting matrix --------------------------------------------------------------------------


def vote_cells(conn: psycopg.Connection, epoch_id: uuid.UUID) -> pd.DataFrame:
    """Every vote of the epoch. The target is named only once the epoch is committed: before that
    the deck knows what each voter saw (the masked label and its position), like the voter did."""
    return _frame(
        conn,
        "SELECT v.voter_agent AS voter, v.position, v.masked_label, v.insight_score AS score,"
        " left(v.rationale, 400) AS rationale, v.latency_penalty,"
        " CASE WHEN e.status = 'committed' THEN v.target_agent END AS target"
        " FROM peer_votes v JOIN simulation_epochs e ON e.epoch_id = v.epoch_id"
        " WHERE v.epoch_id = %(epoch_id)s ORDER BY v.voter_agent, v.position",
        {"epoch_id": epoch_id},
    )


def roster(conn: psycopg.Connection, epoch_id: uuid.UUID) -> pd.DataFrame:
    """The agents the epoch started with, and whether each has drafted, how many drafts it was assigned to
    review, and whether it has voted or abstained yet."""
    return _frame(
        conn,
        "SELECT a.name AS agent, a.origin, a.joined_epoch,"
        " EXISTS (SELECT 1 FROM drafts d WHERE d.epoch_id = e.epoch_id AND d.agent_id = a.agent_id) AS drafted,"
        " (SELECT count(*) FROM peer_votes v WHERE v.epoch_id = e.epoch_id AND v.voter_agent_id = a.agent_id)"
        "   AS votes_cast,"
        " (SELECT count(*) FROM review_assignments r WHERE r.epoch_id = e.epoch_id AND r.voter_agent_id = a.agent_id)"
        "   AS assigned,"
        " (SELECT x.reason FROM vote_abstentions x WHERE x.epoch_id = e.epoch_id AND x.voter_agent = a.name)"
        "   AS abstention"
        " FROM simulation_epochs e CROSS JOIN LATERAL unnest(e.active_agent_ids) AS r(agent_id)"
        " JOIN agents a ON a.agent_id = r.agent_id"
        " WHERE e.epoch_id = %(epoch_id)s ORDER BY a.name",
        {"epoch_id": epoch_id},
    )


# ---- on the chopping block ----------------------------------------------------------------------


def _latest_epoch_with(conn: psycopg.Connection, book: str, table: str) -> dict[str, Any] | None:
    """The latest epoch of `book` that has rows in `table` (a fixed table name, never user input)."""
    query = sql.SQL(
        "{} WHERE e.book = %(book)s AND EXISTS (SELECT 1 FROM {} x WHERE x.epoch_id = e.epoch_id)"
        " ORDER BY e.epoch_number DESC LIMIT 1"
    ).format(_EPOCH_SELECT, sql.Identifier(table))
    return _row(conn, query, {"book": book})


def latest_rated_epoch(conn: psycopg.Connection, book: str) -> dict[str, Any] | None:
    """The latest epoch whose ratings are written: the standings the next elimination will use."""
    return _latest_epoch_with(conn, book, "elo_ratings")


def standings(conn: psycopg.Connection, book: str, rated_epoch_id: uuid.UUID | None) -> pd.DataFrame:
    """The living agents with their ratings after the latest rated epoch (none yet for newcomers)."""
    return _frame(
        conn,
        sql.SQL("SELECT a.name AS agent, a.origin, a.joined_epoch, a.generation,"
        " r.rating_after AS elo, r.bt_rating, r.bt_lower, r.bt_upper, r.epoch_score, r.rank,"
        " r.elimination_score, r.window_mean, r.window_epochs,"
        " {root} AS lineage,"
        " (SELECT count(*) FROM elo_ratings x WHERE x.agent_id = a.agent_id) AS epochs,"
        " (SELECT count(*) FROM chapters c WHERE c.agent_id = a.agent_id) AS chapters"
        " FROM agents a LEFT JOIN elo_ratings r ON r.agent_id = a.agent_id AND r.epoch_id = %(epoch_id)s"
        " WHERE a.book = %(book)s AND a.alive"
        " ORDER BY r.rating_after DESC NULLS LAST, a.name").format(root=LINEAGE_ROOT),
        {"book": book, "epoch_id": rated_epoch_id},
    )


def recent_eliminations(conn: psycopg.Connection, book: str, limit: int = 10) -> pd.DataFrame:
    return _frame(
        conn,
        "SELECT e.epoch_number AS epoch, l.name AS eliminated, e.bottom_separated, n.name AS replaced_by,"
        " n.origin AS replacement_origin"
        " FROM simulation_epochs e JOIN agents l ON l.agent_id = e.loser_agent_id"
        " LEFT JOIN agents n ON n.replaced_agent_id = l.agent_id"
        " WHERE e.book = %(book)s AND e.status = 'committed'"
        " ORDER BY e.epoch_number DESC LIMIT %(limit)s",
        {"book": book, "limit": limit},
    )


# ---- ratings over time --------------------------------------------------------------------------


def rating_history(
    conn: psycopg.Connection, book: str, first: int, last: int, *, max_agents: int = 12, max_points: int = 300
) -> pd.DataFrame:
    """Elo and Bradley–Terry per agent over epochs `first..last`, for the `max_agents` agents with the
    most epochs in the window (those still rated at its end first); `agents_in_window` counts them
    all. Wide windows are averaged into at most `max_points` buckets per agent (a bucket's interval
    is the widest one inside it).

    The agents are picked by their lifespans (`joined_epoch`..`retired_epoch`, written by the Reaper in
    the commit: an agent is rated in every epoch it is alive), so only the picked agents' ratings are
    read, through their index. The pick itself reads only its candidates, each set through an index
    (sql/018_epoch_timing.sql): the agents alive at the window's end (they come first), the longest-lived
    agents inside the window (`agents_book_span_idx`, in order of lifespan) and the agents alive at its
    start. Only the count of the window's agents still reads them all, on a window as wide as the book."""
    bucket = max(1, -(-(last - first + 1) // max_points))
    return _frame(
        conn,
        "WITH cand AS ("
        "   (SELECT agent_id, joined_epoch, retired_epoch FROM agents WHERE book = %(book)s"
        "     AND joined_epoch <= %(last)s AND retired_epoch IS NULL)"
        "   UNION ALL (SELECT agent_id, joined_epoch, retired_epoch FROM agents WHERE book = %(book)s"
        "     AND joined_epoch <= %(last)s AND retired_epoch >= %(last)s)"
        "   UNION ALL (SELECT agent_id, joined_epoch, retired_epoch FROM agents WHERE book = %(book)s"
        "     AND joined_epoch BETWEEN %(first)s AND %(last)s AND retired_epoch >= %(first)s"
        "     AND retired_epoch < %(last)s"
        "     ORDER BY retired_epoch - joined_epoch DESC, retired_epoch DESC LIMIT %(max_agents)s)"
        "   UNION ALL (SELECT agent_id, joined_epoch, retired_epoch FROM agents WHERE book = %(book)s"
        "     AND joined_epoch < %(first)s AND retired_epoch >= %(first)s AND retired_epoch < %(last)s"
        "     ORDER BY retired_epoch DESC LIMIT %(max_agents)s)),"
        " span AS (SELECT agent_id, greatest(joined_epoch, %(first)s) AS lo,"
        "   least(coalesce(retired_epoch, %(last)s), %(last)s) AS hi FROM cand),"
        " picked AS (SELECT agent_id, (SELECT count(*) FROM agents WHERE book = %(book)s"
        "     AND joined_epoch <= %(last)s AND (retired_epoch IS NULL OR retired_epoch >= %(first)s))"
        "   AS agents_in_window FROM span"
        "   ORDER BY hi = %(last)s DESC, hi - lo DESC, hi DESC LIMIT %(max_agents)s)"
        " SELECT r.agent_name AS agent, min(e.epoch_number) AS epoch, avg(r.rating_after) AS elo,"
        " avg(r.bt_rating) AS bt, min(r.bt_lower) AS bt_lower, max(r.bt_upper) AS bt_upper,"
        " min(p.agents_in_window) AS agents_in_window"
        " FROM picked p JOIN elo_ratings r ON r.agent_id = p.agent_id"
        " JOIN simulation_epochs e ON e.epoch_id = r.epoch_id"
        " WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(first)s AND %(last)s"
        " GROUP BY r.agent_name, (e.epoch_number - %(first)s) / %(bucket)s"
        " ORDER BY agent, epoch",
        {"book": book, "first": first, "last": last, "max_agents": max_agents, "bucket": bucket},
    )


def arrivals_and_eliminations(
    conn: psycopg.Connection, book: str, first: int, last: int, limit: int = 200
) -> pd.DataFrame:
    """Who arrived (reserve or mutation) and who was eliminated in the window, the latest first."""
    return _frame(
        conn,
        "(SELECT a.joined_epoch AS epoch, a.name AS agent, 'arrival' AS event, a.origin AS detail"
        "  FROM agents a WHERE a.book = %(book)s AND a.origin <> 'cast'"
        "  AND a.joined_epoch BETWEEN %(first)s AND %(last)s ORDER BY a.joined_epoch DESC LIMIT %(limit)s)"
        " UNION ALL"
        " (SELECT e.epoch_number, l.name, 'elimination',"
        "  CASE WHEN e.bottom_separated THEN 'separated' WHEN NOT e.bottom_separated THEN 'within the noise'"
        "  ELSE '' END"
        "  FROM simulation_epochs e JOIN agents l ON l.agent_id = e.loser_agent_id"
        "  WHERE e.book = %(book)s AND e.status = 'committed'"
        "  AND e.epoch_number BETWEEN %(first)s AND %(last)s ORDER BY e.epoch_number DESC LIMIT %(limit)s)"
        " ORDER BY epoch DESC, event",
        {"book": book, "first": first, "last": last, "limit": limit},
    )


# ---- the book and the multiverse ----------------------------------------------------------------


def chapter_count(conn: psycopg.Connection, book: str) -> int:
    row = _row(conn, "SELECT max(chapter_number) AS n FROM chapters WHERE book = %(book)s", {"book": book})
    return int(row["n"] or 0) if row else 0


def chapters(conn: psycopg.Connection, book: str, first: int, last: int) -> pd.DataFrame:
    """Chapters `first..last` in reading order, with author, epoch, margin and how many drafts competed."""
    return _frame(
        conn,
        "SELECT c.chapter_number, c.title, c.text, c.margin, c.epoch_score, a.name AS author,"
        " e.epoch_number, e.epoch_key, e.epoch_id,"
        " (SELECT count(*) FROM drafts d WHERE d.epoch_id = c.epoch_id) AS drafts"
        " FROM chapters c JOIN agents a ON a.agent_id = c.agent_id"
        " JOIN simulation_epochs e ON e.epoch_id = c.epoch_id"
        " WHERE c.book = %(book)s AND c.chapter_number BETWEEN %(first)s AND %(last)s"
        " ORDER BY c.chapter_number",
        {"book": book, "first": first, "last": last},
    )


def multiverse(conn: psycopg.Connection, epoch_id: uuid.UUID) -> pd.DataFrame:
    """Every draft of the epoch with its scores, the canon's first, then by epoch score."""
    return _frame(
        conn,
        "SELECT d.draft_id, d.agent_name AS agent, d.text, d.completion_tokens, d.truncated, d.penalty,"
        " d.latency_s, r.epoch_score, r.rank, v.mean_score, v.votes,"
        " coalesce(c.draft_id = d.draft_id, false) AS canon"
        " FROM drafts d"
        " LEFT JOIN elo_ratings r ON r.epoch_id = d.epoch_id AND r.agent_id = d.agent_id"
        " LEFT JOIN chapters c ON c.epoch_id = d.epoch_id"
        " CROSS JOIN LATERAL (SELECT avg(p.insight_score)::float8 AS mean_score, count(*) AS votes"
        "   FROM peer_votes p WHERE p.epoch_id = d.epoch_id AND p.target_agent_id = d.agent_id) v"
        " WHERE d.epoch_id = %(epoch_id)s"
        " ORDER BY canon DESC, r.epoch_score DESC NULLS LAST, d.agent_name",
        {"epoch_id": epoch_id},
    )


# ---- lineage ------------------------------------------------------------------------------------


def lineage_summary(conn: psycopg.Connection, book: str) -> pd.DataFrame:
    return _frame(
        conn,
        "SELECT origin, count(*) AS agents, count(*) FILTER (WHERE alive) AS alive,"
        " max(generation) AS max_generation"
        " FROM agents WHERE book = %(book)s GROUP BY origin ORDER BY origin",
        {"book": book},
    )


def lineage_shares(conn: psycopg.Connection, book: str) -> pd.DataFrame:
    """The living cast per root persona, largest share first: the share the Reaper keeps low, by its own
    `lineage_shares` (the living cast is one roster, a few dozen rows at most)."""
    roots = [r["lineage"] for r in conn.execute(
        sql.SQL("SELECT {root} AS lineage FROM agents a WHERE a.book = %(book)s AND a.alive").format(root=LINEAGE_ROOT),
        {"book": book})]
    shares = diversity.lineage_shares(roots)
    alive = Counter(roots)
    frame = pd.DataFrame({"lineage": list(shares), "alive": [alive[r] for r in shares], "share": list(shares.values())})
    return frame.sort_values(["share", "lineage"], ascending=[False, True], ignore_index=True)


def ballot_weights(conn: psycopg.Connection, epoch_id: uuid.UUID) -> pd.DataFrame:
    """The weight each voter's ballots carried in the epoch's elimination, why, and position corrections."""
    return _frame(
        conn,
        "SELECT voter_agent AS voter, weight, reason, position_correction::text AS position_correction"
        " FROM ballot_weights WHERE epoch_id = %(epoch_id)s ORDER BY voter_agent",
        {"epoch_id": epoch_id},
    )


def lineage(conn: psycopg.Connection, book: str, offset: int = 0, limit: int = 25, *,
            total: int | None = None) -> pd.DataFrame:
    """Agents, the latest arrivals first: whom each replaced, and the parent of a mutation.

    With `total` (the book's agents), a page in the older half is read from the oldest end of the
    arrivals index, so no page walks past more than half the book's agents (the last page, none)."""
    order = sql.SQL("joined_epoch DESC, name")
    if total is not None and offset > total // 2:  # the same page, counted from the other end
        order, offset, limit = (sql.SQL("joined_epoch, name DESC"), max(0, total - offset - limit),
                                max(0, min(limit, total - offset)))
    return _frame(
        conn,
        sql.SQL("WITH page AS (SELECT agent_id FROM agents WHERE book = %(book)s"
        "   ORDER BY {order} OFFSET %(offset)s LIMIT %(limit)s)"
        " SELECT a.name AS agent, a.origin, a.generation, a.joined_epoch, a.retired_epoch, a.alive,"
        " r.name AS replaced, p.name AS parent, left(a.persona, 160) AS persona"
        " FROM page JOIN agents a ON a.agent_id = page.agent_id"
        " LEFT JOIN agents r ON r.agent_id = a.replaced_agent_id"
        " LEFT JOIN agents p ON p.agent_id = a.parent_agent_id"
        " ORDER BY a.joined_epoch DESC, a.name").format(order=order),
        {"book": book, "offset": offset, "limit": limit},
    )


def ancestry(conn: psycopg.Connection, book: str, agent: str, depth: int = 12) -> pd.DataFrame:
    """Edges (source → agent) up to `depth` steps back from `agent` through whom it replaced and its
    parent, and one step forward: whoever replaced it, and its mutated children."""
    return _frame(
        conn,
        "WITH RECURSIVE start AS (SELECT agent_id FROM agents WHERE book = %(book)s AND name = %(agent)s),"
        " up(agent_id, depth) AS (SELECT agent_id, 0 FROM start"
        "   UNION SELECT x.src, up.depth + 1 FROM up JOIN agents a ON a.agent_id = up.agent_id"
        "   CROSS JOIN LATERAL (VALUES (a.replaced_agent_id), (a.parent_agent_id)) AS x(src)"
        "   WHERE x.src IS NOT NULL AND up.depth < %(depth)s),"
        " edges AS ("
        "   SELECT a.replaced_agent_id AS src, a.agent_id AS dst, 'replaced' AS kind FROM agents a"
        "   WHERE a.agent_id IN (SELECT agent_id FROM up) AND a.replaced_agent_id IS NOT NULL"
        "   UNION SELECT a.parent_agent_id, a.agent_id, 'parent' FROM agents a"
        "   WHERE a.agent_id IN (SELECT agent_id FROM up) AND a.parent_agent_id IS NOT NULL"
        "   UNION SELECT s.agent_id, a.agent_id, 'replaced' FROM start s JOIN agents a"
        "   ON a.replaced_agent_id = s.agent_id"
        "   UNION SELECT s.agent_id, a.agent_id, 'parent' FROM start s JOIN agents a"
        "   ON a.parent_agent_id = s.agent_id)"
        " SELECT sa.name AS source, sa.origin AS source_origin, sa.alive AS source_alive,"
        " da.name AS agent, da.origin AS agent_origin, da.alive AS agent_alive, edges.kind"
        " FROM edges JOIN agents sa ON sa.agent_id = edges.src JOIN agents da ON da.agent_id = edges.dst"
        " ORDER BY da.joined_epoch, da.name, edges.kind",
        {"book": book, "agent": agent, "depth": depth},
    )


def agent_names(conn: psycopg.Connection, book: str, prefix: str = "", limit: int = 200) -> list[str]:
    """Agent names (the living first, then the latest arrivals), optionally starting with `prefix`."""
    rows = conn.execute(
        "(SELECT name FROM agents WHERE book = %(book)s AND alive AND name ILIKE %(pattern)s ORDER BY name)"
        " UNION ALL (SELECT name FROM agents WHERE book = %(book)s AND NOT alive AND name ILIKE %(pattern)s"
        "   ORDER BY joined_epoch DESC, name LIMIT %(limit)s)"
        " LIMIT %(limit)s",
        {"book": book, "pattern": _like_prefix(prefix), "limit": limit},
    ).fetchall()
    return [r["name"] for r in rows]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# ---- telemetry ----------------------------------------------------------------------------------


# the gap before each epoch of `ep` (columns epoch_id, start_time, prev_end) split into dead time and
# downtime: the part of it inside `loop_downtime` (the loop stopped; dream_pipeline/defs/loop/downtime.py)
_GAP_SPLIT = sql.SQL(
    "SELECT epoch_id, extract(epoch FROM start_time - prev_end)::float8 - o.down AS dead_time_s,"
    " CASE WHEN prev_end IS NOT NULL THEN o.down END AS downtime_s FROM ep CROSS JOIN LATERAL (SELECT least(coalesce(sum(extract(epoch FROM"
    "   least(l.down_until, ep.start_time) - greatest(l.down_from, ep.prev_end))), 0),"
    "   greatest(extract(epoch FROM ep.start_time - ep.prev_end), 0))::float8 AS down"
    "   FROM loop_downtime l WHERE l.down_from < ep.start_time AND l.down_until > ep.prev_end) o"
)


def epoch_telemetry(conn: psycopg.Connection, book: str, first: int, last: int) -> pd.DataFrame:
    """Per epoch of the window: duration, dead time since the previous epoch ended, drafts, forfeits,
    tokens, latency, truncations, abstentions, voter flags and engine calls."""
    first, last = clamp_window(first, last)
    return _frame(
        conn,
        sql.SQL("WITH ep AS (SELECT e.epoch_id, e.epoch_key, e.epoch_number, e.status,"
        "   cardinality(e.active_agent_ids) AS roster, e.engine_modes,"
        "   extract(epoch FROM e.end_time - e.start_time)::float8 AS duration_s,"
        "   e.start_time, lag(e.end_time) OVER (ORDER BY e.epoch_number) AS prev_end"
        "   FROM simulation_epochs e"
        "   WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(first)s - 1 AND %(last)s),"
        " gap AS ({gap})"
        " SELECT ep.epoch_number AS epoch, ep.status, ep.duration_s, gap.dead_time_s, gap.downtime_s, d.drafts,"
        " ep.roster - d.drafts AS forfeits, d.completion_tokens, d.mean_latency_s, d.max_latency_s,"
        " d.truncations,"
        " (SELECT count(*) FROM vote_abstentions a WHERE a.epoch_id = ep.epoch_id) AS abstentions,"
        " (SELECT count(*) FROM voter_flags f WHERE f.epoch_id = ep.epoch_id) AS flags,"
        " c.calls, c.tokens AS call_tokens, c.errors AS call_errors,"
        " ep.engine_modes->>'vote_mode' AS vote_mode, ep.engine_modes->>'embedding_mode' AS memory_mode"
        " FROM ep JOIN gap USING (epoch_id)"
        " CROSS JOIN LATERAL (SELECT count(*) AS drafts, coalesce(sum(x.completion_tokens), 0) AS"
        "   completion_tokens, avg(x.latency_s) AS mean_latency_s, max(x.latency_s) AS max_latency_s,"
        "   count(*) FILTER (WHERE x.truncated) AS truncations FROM drafts x WHERE x.epoch_id = ep.epoch_id) d"
        " CROSS JOIN LATERAL (SELECT count(*) AS calls,"
        "   coalesce(sum(coalesce(l.prompt_tokens, 0) + coalesce(l.completion_tokens, 0)), 0) AS tokens,"
        "   count(*) FILTER (WHERE l.status = 'error') AS errors FROM llm_calls l"
        "   WHERE l.epoch_key = ep.epoch_key) c"
        " WHERE ep.epoch_number >= %(first)s ORDER BY ep.epoch_number").format(gap=_GAP_SPLIT),
        {"book": book, "first": first, "last": last},
    )


def engines(conn: psycopg.Connection, limit: int = 10) -> pd.DataFrame:
    """The engines the loop has probed, latest first: ballot mode, context, embeddings, concurrency."""
    return _frame(
        conn,
        "SELECT base_url, model, capabilities->>'vote_mode' AS vote_mode,"
        " (capabilities->>'context_tokens')::int AS context_tokens, capabilities->>'context_source' AS context_from,"
        " (capabilities->>'embeddings')::bool AS embeddings, (capabilities->>'concurrency')::int AS concurrency,"
        " (capabilities->>'truncates_silently')::bool AS truncates_silently, probed_at, updated_at"
        " FROM engine_capabilities ORDER BY updated_at DESC LIMIT %(limit)s",
        {"limit": limit},
    )


def stalled_epochs(conn: psycopg.Connection, book: str, min_failures: int) -> pd.DataFrame:
    """Open epochs of `book` that failed `min_failures` times or more in a row, with the last reason."""
    return _frame(
        conn,
        "SELECT epoch_key, (timings->>'rolls')::int - 1 AS failures, timings->>'failure' AS failure"
        " FROM simulation_epochs WHERE book = %(book)s AND status <> 'committed'"
        " AND (timings->>'rolls')::int - 1 >= %(min)s ORDER BY epoch_number LIMIT 10",
        {"book": book, "min": min_failures},
    )


def mode_changes(conn: psycopg.Connection, limit: int = 20) -> pd.DataFrame:
    """The latest vote-mode step-downs (a mode that started failing mid-run)."""
    return _frame(
        conn,
        "SELECT changed_at, epoch_key, from_mode, to_mode, reason FROM engine_mode_changes"
        " ORDER BY changed_at DESC, change_id DESC LIMIT %(limit)s",
        {"limit": limit},
    )


def timing_summary(conn: psycopg.Connection, book: str) -> dict[str, Any] | None:
    """Epoch durations and dead time between consecutive epochs over the whole book, with the downtime (the
    loop stopped) apart.

    The committed epochs' figures are the rows the Reaper wrote in each commit (`epoch_timing`,
    sql/018_epoch_timing.sql); only the open epochs (a handful) are split live, by the same function, so a
    render reads one narrow row per epoch instead of splitting every gap of the book again."""
    return _row(
        conn,
        "WITH t AS (SELECT duration_s, dead_time_s, downtime_s FROM epoch_timing WHERE book = %(book)s"
        "  UNION ALL"
        "  SELECT r.duration_s, r.dead_time_s, r.downtime_s FROM simulation_epochs e"
        "  CROSS JOIN LATERAL epoch_timing_rows(e.book, e.epoch_number, e.epoch_number) r"
        "  WHERE e.book = %(book)s AND e.status <> 'committed')"
        " SELECT count(duration_s) AS finished, avg(duration_s) AS mean_duration_s,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_s) AS p95_duration_s,"
        " avg(dead_time_s) AS mean_dead_s,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY dead_time_s) AS p95_dead_s,"
        " coalesce(sum(greatest(dead_time_s, 0)), 0) AS total_dead_s,"
        " coalesce(sum(downtime_s), 0) AS total_downtime_s, count(*) FILTER (WHERE downtime_s > 0) AS restarts"
        " FROM t",
        {"book": book},
    )


def agent_telemetry(conn: psycopg.Connection, book: str, first: int, last: int, limit: int = 200) -> pd.DataFrame:
    """Per agent over the window: drafts, tokens, latency, truncations, abstentions, flags, engine calls."""
    first, last = clamp_window(first, last)
    return _frame(
        conn,
        # the window's keys as arrays, so each table is read through its epoch index, not scanned whole
        "WITH w AS (SELECT array_agg(epoch_id) AS ids, array_agg(epoch_key) AS keys FROM simulation_epochs"
        "   WHERE book = %(book)s AND epoch_number BETWEEN %(first)s AND %(last)s),"
        " d AS (SELECT x.agent_name AS agent, count(*) AS drafts, sum(x.completion_tokens) AS completion_tokens,"
        "   avg(x.latency_s) AS mean_latency_s, max(x.latency_s) AS max_latency_s,"
        "   count(*) FILTER (WHERE x.truncated) AS truncations"
        "   FROM drafts x WHERE x.epoch_id = ANY ((SELECT ids FROM w)::uuid[]) GROUP BY x.agent_name),"
        " a AS (SELECT x.voter_agent AS agent, count(*) AS abstentions"
        "   FROM vote_abstentions x WHERE x.epoch_id = ANY ((SELECT ids FROM w)::uuid[]) GROUP BY x.voter_agent),"
        " f AS (SELECT x.voter_agent AS agent, count(*) FILTER (WHERE x.kind = 'outlier') AS outlier_flags,"
        "   count(*) FILTER (WHERE x.kind = 'clique') AS clique_flags"
        "   FROM voter_flags x WHERE x.epoch_id = ANY ((SELECT ids FROM w)::uuid[]) GROUP BY x.voter_agent),"
        " c AS (SELECT l.agent_name AS agent, count(*) AS calls,"
        "   sum(coalesce(l.prompt_tokens, 0) + coalesce(l.completion_tokens, 0)) AS call_tokens,"
        "   avg(l.latency_s) AS mean_call_latency_s, count(*) FILTER (WHERE l.status = 'error') AS call_errors"
        "   FROM llm_calls l WHERE l.epoch_key = ANY ((SELECT keys FROM w)::text[]) AND l.agent_name IS NOT NULL"
        "   GROUP BY l.agent_name)"
        " SELECT d.agent, d.drafts, d.completion_tokens, d.mean_latency_s, d.max_latency_s, d.truncations,"
        " coalesce(a.abstentions, 0) AS abstentions, coalesce(f.outlier_flags, 0) AS outlier_flags,"
        " coalesce(f.clique_flags, 0) AS clique_flags, coalesce(c.calls, 0) AS calls,"
        " coalesce(c.call_tokens, 0) AS call_tokens, c.mean_call_latency_s, coalesce(c.call_errors, 0) AS call_errors"
        " FROM d LEFT JOIN a USING (agent) LEFT JOIN f USING (agent) LEFT JOIN c USING (agent)"
        " ORDER BY d.drafts DESC, d.agent LIMIT %(limit)s",
        {"book": book, "first": first, "last": last, "limit": limit},
    )


def flags(conn: psycopg.Connection, book: str, first: int, last: int, limit: int = 100) -> pd.DataFrame:
    """Outlier voters and possible cliques flagged in the window, the latest first."""
    return _frame(
        conn,
        "SELECT e.epoch_number AS epoch, f.kind, f.voter_agent AS voter, f.partner, f.strength"
        " FROM simulation_epochs e JOIN voter_flags f ON f.epoch_id = e.epoch_id"
        " WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(first)s AND %(last)s"
        " ORDER BY e.epoch_number DESC, f.kind, f.voter_agent LIMIT %(limit)s",
        {"book": book, "first": first, "last": last, "limit": limit},
    )


# ---- similar drafts (pgvector) ------------------------------------------------------------------


def epoch_drafts(conn: psycopg.Connection, book: str, number: int) -> pd.DataFrame:
    """The drafts of one epoch, with whether each has an embedding and its size."""
    return _frame(
        conn,
        "SELECT d.draft_id, d.agent_name AS agent, vector_dims(d.embedding) AS dims,"
        " coalesce(c.draft_id = d.draft_id, false) AS canon"
        " FROM simulation_epochs e JOIN drafts d ON d.epoch_id = e.epoch_id"
        " LEFT JOIN chapters c ON c.epoch_id = e.epoch_id"
        " WHERE e.book = %(book)s AND e.epoch_number = %(number)s ORDER BY d.agent_name",
        {"book": book, "number": number},
    )


def draft(conn: psycopg.Connection, draft_id: uuid.UUID) -> dict[str, Any] | None:
    return _row(
        conn,
        "SELECT d.draft_id, d.agent_name AS agent, d.text, e.epoch_number, vector_dims(d.embedding) AS dims"
        " FROM drafts d JOIN simulation_epochs e ON e.epoch_id = d.epoch_id WHERE d.draft_id = %(draft_id)s",
        {"draft_id": draft_id},
    )


# The embedding columns are untyped `vector`. A search casts both sides to `vector(n)` for the
# picked draft's own size n and keeps only rows of that size (the cast would raise otherwise): the
# same form as the fabric's partial HNSW indexes, so the planner uses one when it exists for n and
# scans exactly when not. A zero vector's cosine distance (NaN) is left out.
_PROBE = (
    "SELECT d.embedding::text AS embedding, vector_dims(d.embedding) AS dims, e.book"
    " FROM drafts d JOIN simulation_epochs e ON e.epoch_id = d.epoch_id"
    " WHERE d.draft_id = %(draft_id)s AND d.embedding IS NOT NULL"
)


def _nearest(conn: psycopg.Connection, draft_id: uuid.UUID, limit: int, near: tuple[str, str, str], select: str,
             columns: list[str]) -> pd.DataFrame:
    """`select` over `near`, the `4 * limit` rows of a table nearest to the draft `draft_id`'s embedding:
    `near` is (the columns it keeps, the table, which of its rows may be found), each row as `x`. An empty
    frame of `columns` when the draft has no embedding."""
    probe = _row(conn, _PROBE, {"draft_id": draft_id})
    if probe is None:
        return pd.DataFrame(columns=columns)
    kept, table, where = near
    query = sql.SQL(
        "WITH near AS (SELECT {kept}, x.embedding::vector({dim}) <=> %(q)s::vector({dim}) AS distance"
        "   FROM {table} x WHERE x.embedding IS NOT NULL AND vector_dims(x.embedding) = {dim} AND {where}"
        "   ORDER BY x.embedding::vector({dim}) <=> %(q)s::vector({dim}) LIMIT %(candidates)s) {select}"
    ).format(kept=sql.SQL(kept), table=sql.Identifier(table), where=sql.SQL(where), select=sql.SQL(select),
             dim=sql.Literal(int(probe["dims"])))
    return _frame(conn, query, {"q": probe["embedding"], "draft_id": draft_id, "book": probe["book"],
                                "candidates": 4 * limit, "limit": limit})


def similar_drafts(conn: psycopg.Connection, draft_id: uuid.UUID, limit: int = 10) -> pd.DataFrame:
    """The drafts of the same book nearest to `draft_id` by cosine distance (empty without an embedding)."""
    return _nearest(
        conn, draft_id, limit, ("x.draft_id, x.epoch_id", "drafts", "x.draft_id <> %(draft_id)s"),
        "SELECT e.epoch_number AS epoch, d.agent_name AS agent, near.distance, left(d.text, 240) AS opening,"
        " d.draft_id FROM near JOIN simulation_epochs e ON e.epoch_id = near.epoch_id"
        " JOIN drafts d ON d.draft_id = near.draft_id"
        " WHERE e.book = %(book)s AND near.distance <> 'NaN'::float8"
        " ORDER BY near.distance, e.epoch_number DESC LIMIT %(limit)s",
        ["epoch", "agent", "distance", "opening", "draft_id"],
    )


def similar_chapters(conn: psycopg.Connection, draft_id: uuid.UUID, limit: int = 5) -> pd.DataFrame:
    """The chapters of the canon nearest to `draft_id` (its own chapter, if it won, excluded)."""
    return _nearest(
        conn, draft_id, limit, ("x.chapter_id", "chapters", "x.book = %(book)s AND x.draft_id <> %(draft_id)s"),
        "SELECT c.chapter_number AS chapter, c.title, a.name AS author, near.distance,"
        " left(c.text, 240) AS opening"
        " FROM near JOIN chapters c ON c.chapter_id = near.chapter_id JOIN agents a ON a.agent_id = c.agent_id"
        " WHERE near.distance <> 'NaN'::float8 ORDER BY near.distance, c.chapter_number DESC LIMIT %(limit)s",
        ["chapter", "title", "author", "distance", "opening"],
    )


# ---- CodeRepair: the task, the fixes and their tests, the jury's calibration -----------------------


def domain_kind(conn: psycopg.Connection, book: str) -> str | None:
    """The kind of the domain `book` names (which views show it, how its canon is worded)."""
    row = _row(conn, "SELECT kind FROM domains WHERE domain_id = %(book)s", {"book": book})
    return row["kind"] if row else None


def repair_task(conn: psycopg.Connection, epoch_id: uuid.UUID) -> dict[str, Any] | None:
    """The task a CodeRepair epoch posed (None before its burst has recorded it)."""
    return _row(
        conn,
        "SELECT task_id, kind, function, description, buggy, visible_tests FROM repair_tasks"
        " WHERE epoch_id = %(epoch_id)s",
        {"epoch_id": epoch_id},
    )


def repair_candidates(conn: psycopg.Connection, epoch_id: uuid.UUID) -> pd.DataFrame:
    """Every candidate fix of the epoch: the reply, the code taken from it, its hidden-test run (None
    before the sandbox has run it), and its peer score (the mean of its ballot scores, shown once the
    epoch is committed, as the voting matrix names the authors only then); the winner first, then by
    fitness. The winner is the canon's fix once chosen, else the epoch's recorded winner."""
    return _frame(
        conn,
        "SELECT d.draft_id, d.agent_name AS agent, d.text AS reply, t.code, t.status, t.passed, t.total,"
        " t.pass_rate, t.fitness,"
        " CASE WHEN e.status = 'committed' THEN v.mean_score END AS peer_score,"
        " CASE WHEN e.status = 'committed' THEN v.votes END AS votes,"
        " coalesce(c.draft_id = d.draft_id, c.draft_id IS NULL AND e.winner_agent_id = d.agent_id, false) AS winner"
        " FROM drafts d JOIN simulation_epochs e ON e.epoch_id = d.epoch_id"
        " LEFT JOIN candidate_tests t ON t.draft_id = d.draft_id"
        " LEFT JOIN chapters c ON c.epoch_id = d.epoch_id"
        " CROSS JOIN LATERAL (SELECT avg(p.insight_score)::float8 AS mean_score, count(*) AS votes"
        "   FROM peer_votes p WHERE p.epoch_id = d.epoch_id AND p.target_agent_id = d.agent_id) v"
        " WHERE d.epoch_id = %(epoch_id)s"
        " ORDER BY winner DESC, t.fitness DESC NULLS LAST, d.agent_name",
        {"epoch_id": epoch_id},
    )


def latest_calibrated_epoch(conn: psycopg.Connection, book: str) -> dict[str, Any] | None:
    """The latest epoch of `book` whose jury calibration is recorded."""
    return _latest_epoch_with(conn, book, "voter_calibration")


def epoch_calibration(conn: psycopg.Connection, epoch_id: uuid.UUID) -> pd.DataFrame:
    """Each voter's Spearman correlation with the pass rates in one epoch (None: undefined), over n fixes."""
    return _frame(
        conn,
        "SELECT voter_agent AS voter, spearman, n FROM voter_calibration WHERE epoch_id = %(epoch_id)s"
        " ORDER BY spearman DESC NULLS LAST, voter_agent",
        {"epoch_id": epoch_id},
    )


def calibration_window(conn: psycopg.Connection, book: str, first: int, last: int) -> pd.DataFrame:
    """Per voter over epochs `first..last`: the mean Spearman over the epochs where it is defined, with a
    95 % interval (1.96 standard errors; None under two epochs), how many epochs that is, how many more
    were undefined, and the voter's latest epoch in the window; the best calibrated first."""
    first, last = clamp_window(first, last)
    return _frame(
        conn,
        "SELECT k.voter_agent AS voter, avg(k.spearman)::float8 AS mean_spearman,"
        " (1.96 * stddev_samp(k.spearman) / sqrt(count(k.spearman)))::float8 AS ci95,"
        " count(k.spearman) AS epochs, count(*) - count(k.spearman) AS undefined,"
        " max(e.epoch_number) AS last_epoch"
        " FROM simulation_epochs e JOIN voter_calibration k ON k.epoch_id = e.epoch_id"
        " WHERE e.book = %(book)s AND e.epoch_number BETWEEN %(first)s AND %(last)s"
        " GROUP BY k.voter_agent ORDER BY mean_spearman DESC NULLS LAST, voter",
        {"book": book, "first": first, "last": last},
    )
