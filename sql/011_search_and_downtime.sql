-- Full-text search over the book, beside the pgvector indexes: `dream search` fuses both rankings
-- (reciprocal rank fusion, dream_pipeline/search.py), so a verbatim phrase finds its chapter even when
-- the embeddings rank it low. Expression indexes, not stored columns: `SELECT c.*` stays as it was.
-- The expressions must match the queries in resources/text_search.py character for character.
-- left(…, 100000): a tsvector has a 1 MB limit, and a hostile draft may be longer than any real one.
CREATE INDEX IF NOT EXISTS chapters_text_search ON chapters
    USING gin (to_tsvector('english'::regconfig, title || ' ' || left(text, 100000)));
CREATE INDEX IF NOT EXISTS drafts_text_search ON drafts
    USING gin (to_tsvector('english'::regconfig, left(text, 100000)));

-- When the loop was not running (stopped between `dream start`s, between `dream run`s, the daemon down):
-- written when it resumes (dream_pipeline/downtime.py). Dead time is the loop's own overhead between
-- two epochs; a gap that spans downtime is split, so restarts do not inflate its median, p95 and max.
CREATE TABLE IF NOT EXISTS loop_downtime (
    down_from   TIMESTAMPTZ PRIMARY KEY,
    down_until  TIMESTAMPTZ NOT NULL,
    resumed_by  TEXT NOT NULL,  -- 'loop sensor' or 'dream run'
    CHECK (down_until > down_from)
);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dream_reader') THEN
        GRANT SELECT ON loop_downtime TO dream_reader;
    END IF;
END
$$;
