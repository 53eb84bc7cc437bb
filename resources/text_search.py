"""Full-text search over chapters and drafts (PostgreSQL `tsvector`, GIN indexes of sql/011_search_and_downtime.sql).

Two rankings per kind, each a list of keys best first, for `dream search` to fuse with the embeddings':

- **phrase**: the query's words in their order (`phraseto_tsquery`), so a verbatim sentence finds the text
  it was copied from; ranked by cover density (`ts_rank_cd`);
- **words**: any of the query's words (its `plainto_tsquery` with `&` turned into `|`), ranked by how
  many of them the text has, then by how often (`ts_rank`, normalized by length, below 1): a paraphrase
  that shares five of its words with a chapter beats a short text repeating two of them.

Stemming is English (`driven` and `drives` stay apart, `engines` and `engine` meet); stop words are left out.
A chapter is keyed by its number, a draft by (epoch key, agent name).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from resources.fabric import StateFabric

# the indexed expressions of sql/011_search_and_downtime.sql
CHAPTER_DOCUMENT = "to_tsvector('english'::regconfig, c.title || ' ' || left(c.text, 100000))"
DRAFT_DOCUMENT = "to_tsvector('english'::regconfig, left(d.text, 100000))"
QUERIES = {
    "phrase": "phraseto_tsquery('english'::regconfig, %(text)s)",
    "words": "replace(plainto_tsquery('english'::regconfig, %(text)s)::text, '&', '|')::tsquery",
}
# the query's lexemes, each as a tsquery of its own ('simple': already stemmed, only lower-cased again)
_LEXEMES = ("ARRAY(SELECT plainto_tsquery('simple'::regconfig, l)"
            " FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, %(text)s))) l)")
# phrase: cover density; words: how many of the query's words the text has, then how often (length-normalized)
RANKERS = {
    "phrase": "ts_rank_cd(t.v, s.q, 1)",
    "words": "(SELECT count(*) FROM unnest(s.lexemes) l WHERE t.v @@ l) + ts_rank(t.v, s.q, 1)",
}

_CHAPTERS = (
    "SELECT c.chapter_number AS key, {rank} AS rank"
    " FROM (SELECT {query} AS q, {lexemes} AS lexemes) s, chapters c CROSS JOIN LATERAL (SELECT {doc} AS v) t"
    " WHERE c.book = %(book)s AND s.q::text <> '' AND {doc} @@ s.q ORDER BY rank DESC, c.chapter_number"
    " LIMIT %(k)s"
)
_DRAFTS = (
    "SELECT e.epoch_key, d.agent_name, {rank} AS rank"
    " FROM (SELECT {query} AS q, {lexemes} AS lexemes) s, drafts d JOIN simulation_epochs e USING (epoch_id)"
    " CROSS JOIN LATERAL (SELECT {doc} AS v) t"
    " WHERE e.book = %(book)s AND s.q::text <> '' AND {doc} @@ s.q"
    " ORDER BY rank DESC, e.epoch_number, d.agent_name LIMIT %(k)s"
)


@dataclass(frozen=True)
class TextRankings:
    """Per kind (`chapters`, `drafts`) and per ranking (`phrase`, `words`): keys best first, with their rank
    score (PostgreSQL's `ts_rank`, comparable only within one list)."""

    chapters: dict[str, list[tuple[int, float]]]
    drafts: dict[str, list[tuple[tuple[str, str], float]]]


def _query(template: str, doc: str, how: str) -> sql.Composed:
    return sql.SQL(template.format(doc=doc, query=QUERIES[how], rank=RANKERS[how], lexemes=_LEXEMES))


def text_rankings(fabric: StateFabric, book: str, text: str, k: int) -> TextRankings:
    """The `k` best chapters and drafts of `book` for `text` by each full-text ranking (empty lists when
    the text has only stop words)."""
    args = {"book": book, "text": text, "k": k}
    chapters: dict[str, list[tuple[int, float]]] = {}
    drafts: dict[str, list[tuple[tuple[str, str], float]]] = {}
    with fabric.connection() as conn:
        for how in QUERIES:
            rows = conn.execute(_query(_CHAPTERS, CHAPTER_DOCUMENT, how), args).fetchall()
            chapters[how] = [(r["key"], float(r["rank"])) for r in rows]
            rows = conn.execute(_query(_DRAFTS, DRAFT_DOCUMENT, how), args).fetchall()
            drafts[how] = [((r["epoch_key"], r["agent_name"]), float(r["rank"])) for r in rows]
    return TextRankings(chapters, drafts)


@dataclass(frozen=True)
class ChapterHit:
    chapter_number: int
    title: str
    author: str
    text: str
    similarity: float | None  # cosine similarity to the query's embedding (None: no embedding of that size)


@dataclass(frozen=True)
class DraftHitRow:
    epoch_key: str
    epoch_number: int
    agent_name: str
    text: str
    in_canon: bool
    similarity: float | None


def _similarity(column: str, dim: int) -> str:
    return (f"CASE WHEN vector_dims({column}) = {dim} THEN"
            f" 1 - ({column}::vector({dim}) <=> %(q)s::vector({dim})) END AS similarity")


def chapter_hits(fabric: StateFabric, book: str, numbers: list[int], vector) -> dict[int, ChapterHit]:
    """The chapters `numbers` of `book`, with their cosine similarity to `vector`."""
    import numpy as np

    query = sql.SQL(
        "SELECT c.chapter_number, c.title, c.text, a.name AS author, {sim} FROM chapters c"
        " JOIN agents a USING (agent_id) WHERE c.book = %(book)s AND c.chapter_number = ANY(%(numbers)s)"
    ).format(sim=sql.SQL(_similarity("c.embedding", int(fabric.embedding_dim))))
    args = {"book": book, "numbers": numbers, "q": np.asarray(vector, dtype=np.float32)}
    with fabric.connection() as conn:
        rows = conn.execute(query, args).fetchall()
    return {r["chapter_number"]: ChapterHit(r["chapter_number"], r["title"], r["author"], r["text"],
                                            None if r["similarity"] is None else float(r["similarity"]))
            for r in rows}


def draft_hits(fabric: StateFabric, book: str, keys: list[tuple[str, str]], vector) -> dict[tuple[str, str], DraftHitRow]:
    """The drafts keyed (epoch key, agent name) of `book`, with their cosine similarity to `vector`."""
    import numpy as np

    query = sql.SQL(
        "SELECT e.epoch_key, e.epoch_number, d.agent_name, d.text, c.chapter_id IS NOT NULL AS in_canon, {sim}"
        " FROM drafts d JOIN simulation_epochs e USING (epoch_id) LEFT JOIN chapters c USING (draft_id)"
        " WHERE e.book = %(book)s AND (e.epoch_key, d.agent_name::text) IN"
        " (SELECT * FROM unnest(%(epochs)s::text[], %(agents)s::text[]))"
    ).format(sim=sql.SQL(_similarity("d.embedding", int(fabric.embedding_dim))))
    args = {"book": book, "epochs": [k[0] for k in keys], "agents": [k[1] for k in keys],
            "q": np.asarray(vector, dtype=np.float32)}
    with fabric.connection() as conn:
        rows = conn.execute(query, args).fetchall()
    return {(r["epoch_key"], r["agent_name"]): DraftHitRow(
        r["epoch_key"], r["epoch_number"], r["agent_name"], r["text"], bool(r["in_canon"]),
        None if r["similarity"] is None else float(r["similarity"])) for r in rows}
