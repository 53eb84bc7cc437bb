-- Alternate worlds of an epoch (docs/worlds.md): a re-roll asks the engine again, with a seed of its own,
-- and keeps what it got here, apart from the canon. Promoting a world of the latest epoch makes it the
-- canon; the world it replaces is kept here too (status 'superseded'), so nothing is lost.
CREATE TABLE IF NOT EXISTS alternate_worlds (
    world_key     TEXT PRIMARY KEY,                -- '<epoch key>~<n>': its engine calls are recorded under it
    epoch_id      UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    world_number  INT NOT NULL CHECK (world_number >= 1),
    seed          INT,                             -- the requests' `seed`; NULL for a superseded first roll
    status        TEXT NOT NULL CHECK (status IN ('rolling', 'complete', 'failed', 'promoted', 'superseded')),
    reason        TEXT,                            -- why a re-roll failed
    document      JSONB NOT NULL DEFAULT '{}'::jsonb,  -- drafts, ballots, standings, winner, loser, chapter
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    promoted_at   TIMESTAMPTZ,
    UNIQUE (epoch_id, world_number)
);

-- The seed of the world the canon holds (NULL: the first roll); replays of the epoch send it again.
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS world_seed INT;
