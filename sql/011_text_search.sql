-- Full-text search over the book, beside the pgvector indexes: `dream search` fuses both rankings
-- (reciprocal rank fusion, dream_pipeline/search.py), so a verbatim phrase finds its chapter even when
-- the embeddings rank it low. Expression indexes, not stored columns: `SELECT c.*` stays as it was.
-- The expressions must match the queries in resources/text_search.py character for character.
-- left(…, 100000): a tsvector has a 1 MB limit, and a hostile draft may be longer than any real one.
CREATE INDEX IF NOT EXISTS chapters_text_search ON chapters
    USING gin (to_tsvector('english'::regconfig, title || ' ' || left(text, 100000)));
CREATE INDEX IF NOT EXISTS drafts_text_search ON drafts
    USING gin (to_tsvector('english'::regconfig, left(text, 100000)));
