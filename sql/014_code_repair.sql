-- CodeRepair (issue 16): what an epoch of the code_repair domain records beyond the tournament's own
-- tables. Its candidates are ordinary drafts (the agent's full reply), its canon is ordinary chapters
-- (title = the task id, text = the winning fix). These three tables are part of a committed epoch's
-- record (StateFabric CANON_TABLES): nothing but the commit path writes them after the commit.

-- The task posed in each CodeRepair epoch (written when the epoch's burst starts). The hidden tests
-- are not copied here: they stay in the shipped task set, the expected answers never reach a candidate.
CREATE TABLE IF NOT EXISTS repair_tasks (
    epoch_id      UUID PRIMARY KEY REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    task_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    function      TEXT NOT NULL,
    description   TEXT NOT NULL,
    buggy         TEXT NOT NULL,
    visible_tests JSONB NOT NULL DEFAULT '[]'::jsonb
);

-- Each candidate's hidden-test run in the sandbox (one row per draft). An attempt that broke a limit
-- is recorded with its status and scores 0.
CREATE TABLE IF NOT EXISTS candidate_tests (
    draft_id     UUID PRIMARY KEY REFERENCES drafts(draft_id) ON DELETE CASCADE,
    epoch_id     UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    code         TEXT NOT NULL,               -- the code extracted from the reply ('' if none)
    status       TEXT NOT NULL,               -- ok / timeout / killed / malformed / error / unavailable / no_code
    passed       INT NOT NULL CHECK (passed >= 0),
    total        INT NOT NULL CHECK (total >= 0),
    pass_rate    DOUBLE PRECISION NOT NULL CHECK (pass_rate >= 0 AND pass_rate <= 1),
    fitness      DOUBLE PRECISION NOT NULL,   -- the domain's documented combination of tests and peers
    detail       JSONB NOT NULL DEFAULT '[]'::jsonb,
    CHECK (passed <= total)
);
CREATE INDEX IF NOT EXISTS candidate_tests_epoch_idx ON candidate_tests (epoch_id);

-- Per epoch and voter: Spearman of the voter's scores against the candidates' pass rates.
CREATE TABLE IF NOT EXISTS voter_calibration (
    epoch_id     UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    voter_agent  VARCHAR(50) NOT NULL,
    spearman     DOUBLE PRECISION,            -- NULL when undefined (constant scores)
    n            INT NOT NULL CHECK (n >= 0),
    PRIMARY KEY (epoch_id, voter_agent)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dream_reader') THEN
        GRANT SELECT ON repair_tasks, candidate_tests, voter_calibration TO dream_reader;
    END IF;
END
$$;
