-- The canon is untouchable: a committed epoch keeps the fingerprint of what it decided (drafts,
-- votes, abstentions, ratings, outcome, chapter), written by the Reaper's commit transaction; a replay
-- recomputes it from the record and compares, and never rewrites a committed row.
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS fingerprint TEXT;
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS fingerprint_sections JSONB;

-- Deleting an epoch's drafts no longer takes its chapter with it: a chapter goes only when it is
-- deleted on purpose (a rerun of an uncommitted epoch, a promotion), never as a side effect.
ALTER TABLE chapters DROP CONSTRAINT IF EXISTS chapters_draft_id_fkey;
ALTER TABLE chapters ADD CONSTRAINT chapters_draft_id_fkey
    FOREIGN KEY (draft_id) REFERENCES drafts(draft_id) ON DELETE RESTRICT;
