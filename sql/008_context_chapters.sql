-- The earlier chapters an epoch's draft prompt retrieved by similarity (numbers, best first). The live
-- search is approximate (HNSW); a rerun, replay or re-roll of the epoch reads these instead of searching
-- again, so it builds the same prompt whatever has been written since.
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS context_chapters INT[];
