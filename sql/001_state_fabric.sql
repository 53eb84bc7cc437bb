-- The state fabric: the record of every world. Names follow the seed schema
-- (simulation_epochs, peer_votes); everything else is what the tournament needs to be replayed.
CREATE EXTENSION IF NOT EXISTS vector;

-- SPICA domains (a book is one): manifest and live state.
CREATE TABLE IF NOT EXISTS domains (
    domain_id    TEXT PRIMARY KEY,
    instance_id  UUID NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    manifest     JSONB NOT NULL,
    state        JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- SPICA agent instances. A retired agent keeps its row (record and lineage); only its live
-- state is cleared.
CREATE TABLE IF NOT EXISTS agents (
    agent_id           UUID PRIMARY KEY,
    book               TEXT NOT NULL REFERENCES domains(domain_id),
    name               VARCHAR(50) NOT NULL,
    persona            TEXT NOT NULL,
    manifest           JSONB NOT NULL,
    state              JSONB NOT NULL DEFAULT '{}'::jsonb,
    alive              BOOLEAN NOT NULL DEFAULT TRUE,
    generation         INT NOT NULL DEFAULT 0,
    parent_agent_id    UUID REFERENCES agents(agent_id),
    replaced_agent_id  UUID REFERENCES agents(agent_id),
    origin             TEXT NOT NULL CHECK (origin IN ('cast', 'reserve', 'mutation')),
    joined_epoch       INT NOT NULL DEFAULT 1,
    retired_epoch      INT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at         TIMESTAMPTZ,
    UNIQUE (book, name),
    -- one replacement per eliminated agent: the Reaper can never replace anyone twice
    UNIQUE (replaced_agent_id)
);

CREATE TABLE IF NOT EXISTS simulation_epochs (
    epoch_id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    epoch_key         TEXT NOT NULL UNIQUE,          -- the Dagster partition key
    book              TEXT NOT NULL REFERENCES domains(domain_id),
    epoch_number      INT NOT NULL CHECK (epoch_number >= 1),
    start_time        TIMESTAMPTZ NOT NULL DEFAULT now(),
    end_time          TIMESTAMPTZ,
    active_agent_ids  UUID[] NOT NULL,               -- the 5-7 agents alive for this epoch
    winner_agent_id   UUID REFERENCES agents(agent_id),
    loser_agent_id    UUID REFERENCES agents(agent_id),
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'collapsed', 'committed', 'failed')),
    timings           JSONB NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (book, epoch_number)
);

CREATE TABLE IF NOT EXISTS drafts (
    draft_id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    epoch_id           UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    agent_id           UUID NOT NULL REFERENCES agents(agent_id),
    agent_name         VARCHAR(50) NOT NULL,
    text               TEXT NOT NULL,
    prompt_tokens      INT NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  INT NOT NULL CHECK (completion_tokens >= 0),
    finish_reason      TEXT,
    truncated          BOOLEAN NOT NULL,
    latency_s          DOUBLE PRECISION NOT NULL CHECK (latency_s >= 0),
    latency_penalty    DOUBLE PRECISION NOT NULL DEFAULT 0,
    penalty            DOUBLE PRECISION NOT NULL DEFAULT 0,
    embedding          vector,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (epoch_id, agent_id)
);

CREATE TABLE IF NOT EXISTS peer_votes (
    vote_id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    epoch_id         UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    voter_agent      VARCHAR(50) NOT NULL,
    target_agent     VARCHAR(50) NOT NULL,
    insight_score    INT NOT NULL CHECK (insight_score BETWEEN 1 AND 10),
    latency_penalty  DOUBLE PRECISION NOT NULL DEFAULT 0,   -- lower is better
    rationale        TEXT NOT NULL DEFAULT '',
    masked_label     TEXT NOT NULL,                         -- what the voter saw
    position         INT NOT NULL CHECK (position >= 0),   -- where the voter saw it
    voter_agent_id   UUID NOT NULL REFERENCES agents(agent_id),
    target_agent_id  UUID NOT NULL REFERENCES agents(agent_id),
    UNIQUE (epoch_id, voter_agent, target_agent),
    CHECK (voter_agent <> target_agent)
);

-- A ballot that stayed unparseable after its retries: recorded, never turned into a score.
CREATE TABLE IF NOT EXISTS vote_abstentions (
    epoch_id     UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    voter_agent  VARCHAR(50) NOT NULL,
    reason       TEXT NOT NULL,
    raw_reply    TEXT,
    PRIMARY KEY (epoch_id, voter_agent)
);

CREATE TABLE IF NOT EXISTS elo_ratings (
    epoch_id       UUID NOT NULL REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    agent_id       UUID NOT NULL REFERENCES agents(agent_id),
    agent_name     VARCHAR(50) NOT NULL,
    rating_before  DOUBLE PRECISION NOT NULL,
    rating_after   DOUBLE PRECISION NOT NULL,
    epoch_score    DOUBLE PRECISION,
    penalty        DOUBLE PRECISION NOT NULL DEFAULT 0,
    rank           INT NOT NULL,
    PRIMARY KEY (epoch_id, agent_id)
);

-- The canon: exactly one chapter per committed epoch.
CREATE TABLE IF NOT EXISTS chapters (
    chapter_id      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book            TEXT NOT NULL REFERENCES domains(domain_id),
    chapter_number  INT NOT NULL,
    epoch_id        UUID NOT NULL UNIQUE REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    draft_id        UUID NOT NULL REFERENCES drafts(draft_id) ON DELETE CASCADE,
    agent_id        UUID NOT NULL REFERENCES agents(agent_id),
    title           TEXT NOT NULL,
    text            TEXT NOT NULL,
    epoch_score     DOUBLE PRECISION,
    margin          DOUBLE PRECISION,
    embedding       vector,
    committed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (book, chapter_number)
);

-- Every engine call: the replay source for backfills and the cost ledger. Append-only; the API
-- key is never part of a recorded request.
CREATE TABLE IF NOT EXISTS llm_calls (
    call_id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    epoch_key          TEXT,
    purpose            TEXT NOT NULL,
    agent_name         VARCHAR(50),
    request_hash       TEXT NOT NULL,
    request            JSONB NOT NULL,
    response           JSONB,
    prompt_tokens      INT,
    completion_tokens  INT,
    latency_s          DOUBLE PRECISION NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error              TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS llm_calls_epoch_idx ON llm_calls (epoch_key, purpose);
CREATE INDEX IF NOT EXISTS llm_calls_hash_idx ON llm_calls (request_hash);

-- SPICA telemetry of every instance (agents, domains).
CREATE TABLE IF NOT EXISTS telemetry (
    telemetry_id  BIGSERIAL PRIMARY KEY,
    instance_id   UUID NOT NULL,
    kind          TEXT NOT NULL,
    epoch_key     TEXT,
    event         TEXT NOT NULL,
    payload       JSONB NOT NULL DEFAULT '{}'::jsonb,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS telemetry_instance_idx ON telemetry (instance_id, recorded_at);
CREATE INDEX IF NOT EXISTS telemetry_epoch_idx ON telemetry (epoch_key);
-- One event of a kind per instance per epoch: re-running an epoch updates, never duplicates.
CREATE UNIQUE INDEX IF NOT EXISTS telemetry_epoch_event_uq
    ON telemetry (instance_id, epoch_key, event) WHERE epoch_key IS NOT NULL;
