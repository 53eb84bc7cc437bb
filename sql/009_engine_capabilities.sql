-- What each engine (base URL and model) can do, as probed once (resources/engine_probe.py): the
-- structured-output mode for ballots, the context window, embeddings, measured concurrency.
CREATE TABLE IF NOT EXISTS engine_capabilities (
    base_url      TEXT NOT NULL,
    model         TEXT NOT NULL,
    capabilities  JSONB NOT NULL,
    probed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (base_url, model)
);

-- Every step down of a structured-output mode that started failing mid-run.
CREATE TABLE IF NOT EXISTS engine_mode_changes (
    change_id   BIGSERIAL PRIMARY KEY,
    base_url    TEXT NOT NULL,
    model       TEXT NOT NULL,
    epoch_key   TEXT,
    from_mode   TEXT NOT NULL,
    to_mode     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS engine_mode_changes_at_idx ON engine_mode_changes (changed_at);

-- The modes an epoch used (vote mode, embedding or full-text memory, the context window): a rerun,
-- replay or re-roll of the epoch sends the same request shapes, so its recorded answers are found.
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS engine_modes JSONB;

-- Lexical similarity for novelty without embeddings, where the server has pg_trgm (the embedded
-- pgserver does not: the same trigram measure is then computed in Python, dream_pipeline/memory.py).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    END IF;
END
$$;

-- Memory without embeddings: full-text search over the canon (ts_rank), indexed.
CREATE INDEX IF NOT EXISTS chapters_text_fts ON chapters USING gin (to_tsvector('english', text));
