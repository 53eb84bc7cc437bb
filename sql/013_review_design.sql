-- Every request fits the engine's context window (docs/tournament_rules.md, section 11).
-- The window an epoch's drafts and ballots were fitted into, recorded with its drafts, so a rerun,
-- replay or re-roll fits them the same way whatever the setting is now. NULL: drafted before windows
-- were recorded (such an epoch is replayed as it ran: unbounded).
ALTER TABLE simulation_epochs ADD COLUMN IF NOT EXISTS context_window INT CHECK (context_window > 0);

-- Who reviewed whom: the bounded review design of an epoch (each voter reviews its load of drafts,
-- every draft is reviewed equally often), written before the ballots are asked for. A voter's votes
-- must be exactly its assigned drafts (StateFabric.integrity, 'incomplete_ballots'). `shown_chars`:
-- how much of the draft the voter was shown (NULL: all of it).
CREATE TABLE IF NOT EXISTS review_assignments (
    epoch_id         UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    voter_agent      VARCHAR(50) NOT NULL,
    target_agent     VARCHAR(50) NOT NULL,
    voter_agent_id   UUID NOT NULL REFERENCES agents(agent_id),
    target_agent_id  UUID NOT NULL REFERENCES agents(agent_id),
    masked_label     TEXT NOT NULL,
    position         INT NOT NULL CHECK (position >= 0),
    shown_chars      INT CHECK (shown_chars >= 0),
    PRIMARY KEY (epoch_id, voter_agent, target_agent),
    UNIQUE (epoch_id, voter_agent, position),
    CHECK (voter_agent <> target_agent)
);
