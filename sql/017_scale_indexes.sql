-- Issue 17: what grows with the book. `dream status` and the loop's timeline read the latest epochs by
-- their start (`ORDER BY start_time DESC LIMIT n`): without an index that sorted every epoch of every
-- book (100,000 rows at 100,000 epochs) on each call.
CREATE INDEX IF NOT EXISTS simulation_epochs_start_idx ON simulation_epochs (start_time);
