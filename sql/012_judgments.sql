-- Judgments that track quality (docs/tournament_rules.md).
-- What de-identification masked in each draft before voters read it: {"term": count, ...}.
-- The draft's text (and the chapter made of it) keeps the original words.
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS masked_terms JSONB NOT NULL DEFAULT '{}'::jsonb;

-- The weight each voter's ballots carried in an epoch's elimination decision, and why; the position
-- effect removed from its scores (points by 0-based position) when that effect was significant.
CREATE TABLE IF NOT EXISTS ballot_weights (
    epoch_id            UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    voter_agent         VARCHAR(50) NOT NULL,
    weight              DOUBLE PRECISION NOT NULL CHECK (weight >= 0 AND weight <= 1),
    reason              TEXT NOT NULL DEFAULT '',
    position_correction JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (epoch_id, voter_agent)
);

-- The score elimination ranks on (empirical-Bayes shrunk mean adjusted score over the window), and the
-- raw window mean and epochs behind it; the deck's chopping block applies the same rule to these.
ALTER TABLE elo_ratings ADD COLUMN IF NOT EXISTS elimination_score DOUBLE PRECISION;
ALTER TABLE elo_ratings ADD COLUMN IF NOT EXISTS window_mean DOUBLE PRECISION;
ALTER TABLE elo_ratings ADD COLUMN IF NOT EXISTS window_epochs INT;
