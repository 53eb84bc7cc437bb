-- The book's memory: rolling summaries, novelty of drafts, and the setting that fixes the dimension
-- of the embeddings. The `embedding` columns stay untyped `vector`: the HNSW indexes are built by the
-- fabric for the configured dimension (DREAM_EMBEDDING_DIM) as partial expression indexes on
-- `(embedding::vector(n)) WHERE vector_dims(embedding) = n`, and the dimension is recorded in
-- `memory_settings`, so a fabric configured with another one fails with a clear error. See docs/memory.md.

CREATE TABLE IF NOT EXISTS memory_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The rolling summary of the book after each committed chapter (an LLM call, recorded in llm_calls).
CREATE TABLE IF NOT EXISTS book_summaries (
    book            TEXT NOT NULL REFERENCES domains(domain_id),
    chapter_number  INT NOT NULL CHECK (chapter_number >= 1),
    epoch_id        UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    summary         TEXT NOT NULL,
    tokens          INT NOT NULL CHECK (tokens >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (book, chapter_number)
);

-- Novelty: the draft's highest cosine similarity to the canon before its epoch, the points that
-- cost it (part of `penalty`), and its closest sibling in the same epoch when they nearly coincide.
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS canon_similarity DOUBLE PRECISION;
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS novelty_penalty DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS peer_similarity DOUBLE PRECISION;
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS near_duplicate_of VARCHAR(50);
