-- When each engine call was sent (created_at is when the ledger row was written, after the call and in
-- a batch). The dead time between epochs is measured up to the next epoch's first engine call.
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS started_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS llm_calls_epoch_start_idx ON llm_calls (epoch_key, started_at);
