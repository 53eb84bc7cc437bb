-- The continuous loop: which Dagster run owns an epoch, and when it passed its barrier.
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS run_id TEXT;
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS released_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS simulation_epochs_open_idx ON simulation_epochs (status)
    WHERE status IN ('running', 'collapsed');
