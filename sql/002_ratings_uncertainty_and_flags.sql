-- Ratings with uncertainty (Bradley–Terry, bootstrap by ballot) and voter flags per epoch.
ALTER TABLE elo_ratings ADD COLUMN IF NOT EXISTS bt_rating DOUBLE PRECISION;
ALTER TABLE elo_ratings ADD COLUMN IF NOT EXISTS bt_lower DOUBLE PRECISION;
ALTER TABLE elo_ratings ADD COLUMN IF NOT EXISTS bt_upper DOUBLE PRECISION;
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS bottom_separated BOOLEAN;

-- Outlier voters and possible cliques, as judged over the recent window at this epoch.
CREATE TABLE IF NOT EXISTS voter_flags (
    epoch_id     UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('outlier', 'clique')),
    voter_agent  VARCHAR(50) NOT NULL,
    partner      VARCHAR(50) NOT NULL DEFAULT '',
    strength     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (epoch_id, kind, voter_agent, partner)
);
