"""The memory (docs/memory.md): embeddings and their HNSW indexes, rolling summaries, retrieval of
nearest chapters and drafts, full-text memory, and the canon similarity behind the novelty rule."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from dream_pipeline.records import BookMemoryRows, ChapterRow, DraftHit, EmbeddingDimensionError, SummaryRow
from resources.fabric.canon import refuse_committed
from resources.fabric.rows import as_list, as_vector, chapter_from_row

_MEMORY_READY: set[tuple[str, int]] = set()


# how a nearest-neighbour query may scan: the planner's choice (usually HNSW), the index forced, no index
SCAN_SETTINGS = {
    "auto": ["SET LOCAL hnsw.ef_search = 100"],
    "index": ["SET LOCAL hnsw.ef_search = 100", "SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"],
    "exact": ["SET LOCAL enable_indexscan = off"],
}


# nearest-neighbour queries of the memory: `{vec}`, `{q}`, `{dim}` are filled in by `StateFabric._nearest`
# the scan ranks ids only; the k rows it keeps are joined to their text afterwards, so an exact scan
# carries no row's text or vector through the sort (it costs about half as much per row)
CHAPTERS_NEAR = sql.SQL(
    "SELECT c.*, a.name AS author, e.epoch_key, n.similarity FROM ("
    "  SELECT chapter_id, 1 - ({vec} <=> {q}) AS similarity FROM chapters"
    "  WHERE book = %(p0)s AND chapter_number < %(p1)s AND vector_dims(embedding) = {dim}"
    "  ORDER BY {vec} <=> {q} LIMIT %(k)s"
    ") n JOIN chapters c USING (chapter_id) JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
    " ORDER BY n.similarity DESC, c.chapter_number"
)


CHAPTERS_BY_NUMBER = sql.SQL(
    "SELECT c.*, a.name AS author, e.epoch_key, 1 - ({vec} <=> {q}) AS similarity FROM chapters c"
    " JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
    " WHERE c.book = %(p0)s AND c.chapter_number = ANY(%(p1)s) AND vector_dims(embedding) = {dim}"
    " ORDER BY similarity DESC, c.chapter_number"
)


DRAFTS_NEAR = sql.SQL(
    "SELECT d.*, e.epoch_key, e.epoch_number, c.chapter_id IS NOT NULL AS in_canon, n.similarity FROM ("
    "  SELECT draft_id, 1 - ({vec} <=> {q}) AS similarity FROM drafts"
    "  WHERE epoch_id IN (SELECT epoch_id FROM simulation_epochs WHERE book = %(p0)s)"
    "  AND vector_dims(embedding) = {dim}"
    "  ORDER BY {vec} <=> {q} LIMIT %(k)s"
    ") n JOIN drafts d USING (draft_id) JOIN simulation_epochs e USING (epoch_id) LEFT JOIN chapters c USING (draft_id)"
    " ORDER BY n.similarity DESC, e.epoch_number, d.agent_name"
)


RECENCY_WEIGHT = 0.05  # full-text memory: what being the latest chapter adds to a chapter's rank


_WORD = re.compile(r"[A-Za-z]{5,}")


def text_query(text: str, words: int = 24) -> str:
    """A tsquery matching any of the `words` most frequent long words of `text` (letters only, so nothing
    in it is tsquery syntax); empty when the text has none."""
    counts = Counter(w.lower() for w in _WORD.findall(text))
    return " | ".join(w for w, _ in counts.most_common(words))


class MemoryMixin:
    """What the prompt remembers of a book, and how similar a text is to its canon."""

    def prepare_memory(self) -> None:
        """Record the embedding dimension and build the HNSW indexes for it, once per database.

        The `embedding` columns are untyped; the indexes are partial expression indexes on
        `embedding::vector(n)` for `n = embedding_dim`, and every memory query filters on the same
        predicate, so the planner can use them. A fabric configured with another dimension than the
        one recorded in `memory_settings` (or than the vectors already stored) fails here, clearly.
        """
        url, dim = self.url(), self.embedding_dim
        if (url, dim) in _MEMORY_READY:
            return
        with psycopg.connect(url, autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('dream_memory'))")
            row = conn.execute("SELECT value FROM memory_settings WHERE name = 'embedding_dim'").fetchone()
            if row is not None and int(row[0]) != dim:
                raise EmbeddingDimensionError(
                    f"DREAM_EMBEDDING_DIM (StateFabric.embedding_dim) is {dim}, but this state fabric's memory is"
                    f" indexed for {row[0]}-dimensional embeddings (memory_settings.embedding_dim). Set"
                    f" DREAM_EMBEDDING_DIM={row[0]} to match its embedding model, or use a new database."
                )
            if row is None:
                for table in ("chapters", "drafts"):
                    other = conn.execute(
                        sql.SQL(
                            "SELECT vector_dims(embedding) AS dims, count(*) AS n FROM {} WHERE embedding IS NOT NULL"
                            " AND vector_dims(embedding) <> %s GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
                        ).format(sql.Identifier(table)),
                        (dim,),
                    ).fetchone()
                    if other is not None:
                        raise EmbeddingDimensionError(
                            f"DREAM_EMBEDDING_DIM (StateFabric.embedding_dim) is {dim}, but {other[1]} stored {table}"
                            f" embeddings have {other[0]} dimensions. Set DREAM_EMBEDDING_DIM={other[0]}, or use a"
                            " new database."
                        )
                conn.execute(
                    "INSERT INTO memory_settings (name, value) VALUES ('embedding_dim', %s)", (str(dim),)
                )
            for table in ("chapters", "drafts"):
                index = f"{table}_embedding_hnsw"
                if conn.execute("SELECT to_regclass(%s)", (index,)).fetchone()[0] is None:
                    conn.execute(
                        sql.SQL(
                            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ((embedding::vector({dim}))"
                            " vector_cosine_ops) WHERE vector_dims(embedding) = {dim}"
                        ).format(sql.Identifier(index), sql.Identifier(table), dim=sql.Literal(dim))
                    )
            conn.commit()
        _MEMORY_READY.add((url, dim))

    def check_dimensions(self, vectors: Sequence[Sequence[float]], what: str = "embeddings") -> None:
        """Raise `EmbeddingDimensionError` unless every vector has `embedding_dim` components."""
        bad = sorted({len(v) for v in vectors} - {self.embedding_dim})
        if bad:
            raise EmbeddingDimensionError(
                f"the engine returned {'/'.join(map(str, bad))}-dimensional {what}, but DREAM_EMBEDDING_DIM"
                f" (StateFabric.embedding_dim) is {self.embedding_dim}; set it to the embedding model's dimension"
            )

    def _nearest(
        self,
        conn: psycopg.Connection,
        query: sql.Composable,
        vector: Sequence[float],
        params: Sequence[Any],
        k: int,
        scan: str,
    ) -> list[dict[str, Any]]:
        """Run a nearest-neighbour `query` whose `{vec}`/`{q}`/`{dim}` are the typed column, the query
        vector and the dimension. scan: 'auto' (the planner, usually the HNSW index), 'index' (forced),
        'exact' (no index: a sequential scan). An approximate scan whose filters left fewer than `k`
        rows is repeated exactly, so a filter never hides a neighbour (pgvector 0.6 has no iterative scan).
        """
        self.check_dimensions([vector], "query embeddings")
        dim = sql.Literal(self.embedding_dim)
        composed = query.format(
            vec=sql.SQL("embedding::vector({})").format(dim), q=sql.SQL("%(q)s::vector({})").format(dim), dim=dim
        )
        args = {"q": as_vector(vector), "k": k, **{f"p{i}": p for i, p in enumerate(params)}}
        with conn.transaction(force_rollback=True):  # SET LOCAL ends with this savepoint
            conn.execute("; ".join(SCAN_SETTINGS[scan]))  # one round trip for all of them (no parameters)
            rows = conn.execute(composed, args).fetchall()
        if scan != "exact" and len(rows) < k:
            return self._nearest(conn, query, vector, params, k, "exact")
        return rows

    def nearest_chapters(
        self, book: str, vector: Sequence[float], k: int, *, before_number: int | None = None, scan: str = "auto"
    ) -> list[tuple[ChapterRow, float]]:
        """The `k` chapters of `book` (before `before_number`) most similar to `vector`, best first."""
        if k <= 0:
            return []
        before = before_number if before_number is not None else 2**31 - 1
        with self.connection() as conn:
            rows = self._nearest(conn, CHAPTERS_NEAR, vector, [book, before], k, scan)
        return [(chapter_from_row(r), float(r["similarity"])) for r in rows]

    def canon_similarity(
        self, book: str, before_number: int, vectors: Sequence[Sequence[float] | None]
    ) -> list[float | None]:
        """For each vector, its highest cosine similarity to a chapter before `before_number` (None: no canon).

        One statement for all the vectors, exact by construction (an aggregate, which no index serves),
        like the prompt's retrieval: a decision must come out the same in a replay. `1 - min(distance)` is
        the similarity of the nearest chapter, the same float an exact nearest-neighbour scan returns."""
        given = [(i, v) for i, v in enumerate(vectors) if v is not None]
        out: list[float | None] = [None] * len(vectors)
        if not given:
            return out
        self.check_dimensions([v for _, v in given], "query embeddings")
        dim = sql.Literal(self.embedding_dim)
        query = sql.SQL(
            "SELECT q.i, (SELECT 1 - min(c.embedding::vector({dim}) <=> q.v::vector({dim})) FROM chapters c"
            "  WHERE c.book = %(book)s AND c.chapter_number < %(before)s AND vector_dims(c.embedding) = {dim})"
            "  AS similarity"
            " FROM unnest(%(ids)s::int[], %(vectors)s::vector[]) AS q(i, v)"
        ).format(dim=dim)
        with self.connection() as conn:
            rows = conn.execute(query, {
                "book": book, "before": before_number, "ids": [i for i, _ in given],
                "vectors": [as_vector(v) for _, v in given],
            }).fetchall()
        for r in rows:
            out[r["i"]] = None if r["similarity"] is None else float(r["similarity"])
        return out

    def book_memory(self, book: str, chapter_number: int, *, top_k: int, outline: int = 12,
                    retrieved: Sequence[int] | None = None, scan: str = "auto",
                    full_text: bool = False) -> BookMemoryRows:
        """The rows behind the prompt of chapter `chapter_number`: the latest summary, the last chapter,
        the `top_k` earlier chapters nearest to the last one, and the latest `outline` chapters.

        Only chapters before `chapter_number` are read, so a rerun of an epoch sees what it saw then.
        The nearest chapters are searched with the HNSW index (approximate, and far cheaper than an
        exact scan as the book grows), unless `retrieved` names the ones an earlier run of the epoch found
        (`simulation_epochs.context_chapters`): those are read again, with the same similarities, so
        the prompt is the same however the index has changed since. `scan` as in `_nearest`.
        """
        with self.connection() as conn:
            # the outline's chapters without their embeddings: only the last one's is a query vector
            latest = conn.execute(
                "SELECT c.chapter_number, c.draft_id, c.agent_id, c.title, c.text, c.epoch_score, c.margin,"
                " a.name AS author, e.epoch_key, CASE WHEN c.chapter_number = (SELECT max(chapter_number)"
                "  FROM chapters WHERE book = %(book)s AND chapter_number < %(n)s) THEN c.embedding END AS embedding"
                " FROM chapters c JOIN agents a USING (agent_id)"
                " JOIN simulation_epochs e USING (epoch_id) WHERE c.book = %(book)s AND c.chapter_number < %(n)s"
                " ORDER BY c.chapter_number DESC LIMIT %(limit)s",
                {"book": book, "n": chapter_number, "limit": max(outline, 1)},
            ).fetchall()
            summary = conn.execute(
                "SELECT chapter_number, summary, tokens FROM book_summaries"
                " WHERE book = %s AND chapter_number < %s ORDER BY chapter_number DESC LIMIT 1",
                (book, chapter_number),
            ).fetchone()
            related: list[dict[str, Any]] = []
            last_vector = as_list(latest[0]["embedding"]) if latest else None
            if full_text:  # no embedding engine: the same memory by words (and recency), docs/memory.md
                if top_k > 0 and latest and (retrieved is None or retrieved):
                    related = self._related_by_text(conn, book, latest[0], top_k, retrieved)
            elif top_k > 0 and last_vector is not None and len(last_vector) == self.embedding_dim:
                before = latest[0]["chapter_number"]
                if retrieved is None:
                    related = self._nearest(conn, CHAPTERS_NEAR, last_vector, [book, before], top_k, scan)
                elif retrieved:
                    related = self._nearest(conn, CHAPTERS_BY_NUMBER, last_vector, [book, list(retrieved)],
                                            len(retrieved), "exact")
        return BookMemoryRows(
            chapter_number=chapter_number,
            summary=None if summary is None else SummaryRow(summary["chapter_number"], summary["summary"],
                                                            summary["tokens"]),
            last=chapter_from_row(latest[0]) if latest else None,
            related=tuple((chapter_from_row(r), float(r["similarity"])) for r in related),
            outline=tuple(chapter_from_row(r) for r in reversed(latest[:outline])),
        )

    def _related_by_text(self, conn: psycopg.Connection, book: str, last: dict[str, Any], k: int,
                         retrieved: Sequence[int] | None) -> list[dict[str, Any]]:
        """The earlier chapters nearest to `last` by full-text search: `ts_rank` over the last chapter's
        salient words, plus a small recency bonus (RECENCY_WEIGHT × chapter / last chapter)."""
        query = text_query(last["text"])
        if not query:
            return []
        before = last["chapter_number"]
        by_number = retrieved is not None
        return conn.execute(
            "SELECT * FROM (SELECT c.*, a.name AS author, e.epoch_key,"
            " ts_rank(to_tsvector('english', c.text), to_tsquery('english', %(q)s))"
            "   + %(w)s * c.chapter_number::float8 / %(before)s AS similarity"
            " FROM chapters c JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id)"
            " WHERE c.book = %(book)s AND c.chapter_number < %(before)s"
            " AND (CASE WHEN %(by_number)s THEN c.chapter_number = ANY(%(numbers)s)"
            "      ELSE to_tsvector('english', c.text) @@ to_tsquery('english', %(q)s) END)) r"
            " ORDER BY similarity DESC, chapter_number DESC LIMIT %(k)s",
            {"q": query, "w": RECENCY_WEIGHT, "before": before, "book": book, "by_number": by_number,
             "numbers": list(retrieved or []), "k": len(retrieved) if by_number else k},
        ).fetchall()

    def canon_texts_like(self, book: str, before_number: int, text: str, k: int = 5) -> list[str]:
        """The texts of the `k` chapters before `before_number` that share the most words with `text`
        (full-text rank): the candidates a lexical novelty check compares a draft with."""
        query = text_query(text)
        if not query:
            return []
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT text FROM chapters WHERE book = %(book)s AND chapter_number < %(before)s"
                " AND to_tsvector('english', text) @@ to_tsquery('english', %(q)s)"
                " ORDER BY ts_rank(to_tsvector('english', text), to_tsquery('english', %(q)s)) DESC,"
                " chapter_number DESC LIMIT %(k)s",
                {"book": book, "before": before_number, "q": query, "k": k},
            ).fetchall()
        return [r["text"] for r in rows]

    def write_summary(self, epoch_id: uuid.UUID, book: str, chapter_number: int, summary: str) -> None:
        """Write (or rewrite) the rolling summary of `book` after chapter `chapter_number`."""
        with self.connection() as conn:
            refuse_committed(conn, epoch_id)
            conn.execute(
                "INSERT INTO book_summaries (book, chapter_number, epoch_id, summary, tokens)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (book, chapter_number) DO UPDATE SET"
                " epoch_id = EXCLUDED.epoch_id, summary = EXCLUDED.summary, tokens = EXCLUDED.tokens,"
                " created_at = now()",
                (book, chapter_number, epoch_id, summary, len(summary.split())),
            )

    def latest_summary(self, book: str, before_number: int) -> SummaryRow | None:
        """The rolling summary as it stood after the latest chapter before `before_number`."""
        with self.connection() as conn:
            r = conn.execute(
                "SELECT chapter_number, summary, tokens FROM book_summaries"
                " WHERE book = %s AND chapter_number < %s ORDER BY chapter_number DESC LIMIT 1",
                (book, before_number),
            ).fetchone()
        return None if r is None else SummaryRow(r["chapter_number"], r["summary"], r["tokens"])

    def nearest_drafts(self, book: str, vector: Sequence[float], k: int, *, scan: str = "auto") -> list[DraftHit]:
        """The `k` drafts of `book` (any epoch, winners or not) most similar to `vector`, best first."""
        if k <= 0:
            return []
        with self.connection() as conn:
            rows = self._nearest(conn, DRAFTS_NEAR, vector, [book], k, scan)
        return [
            DraftHit(r["epoch_key"], r["epoch_number"], r["agent_name"], r["text"], float(r["similarity"]),
                     bool(r["in_canon"]))
            for r in rows
        ]
