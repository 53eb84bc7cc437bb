-- The Epistemic Deck's read-only role, and the indexes its views need at 10,000 epochs.
--
-- `dream_reader` logs in without a password: the embedded server only listens on its unix socket
-- with trust authentication. On an external server, give the role a password out of band
-- (ALTER ROLE dream_reader PASSWORD ...) and point the deck at it with DREAM_DECK_DATABASE_URL,
-- reading the password from the environment; it is never written here.
--
-- Roles are server-wide, so two databases migrating at once may race to create it; and a fabric
-- owner without CREATEROLE (some managed servers) skips the role with a notice instead of failing
-- the whole migration. The grants are per database and always re-applied.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dream_reader') THEN
        BEGIN
            CREATE ROLE dream_reader LOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'dream_reader not created (no CREATEROLE): create it to use the deck';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dream_reader') THEN
        BEGIN
            ALTER ROLE dream_reader SET default_transaction_read_only = on;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO dream_reader', current_database());
        GRANT USAGE ON SCHEMA public TO dream_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO dream_reader;
        -- tables created by later migrations (run by this same owner) are readable too
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO dream_reader;
    END IF;
END
$$;

-- What the deck's views look up at 10,000 epochs (python -m bench.deck): an agent's ratings and
-- chapters, the living agents of a book, and the agents in order of arrival (lineage pages).
CREATE INDEX IF NOT EXISTS elo_ratings_agent_idx ON elo_ratings (agent_id);
CREATE INDEX IF NOT EXISTS chapters_agent_idx ON chapters (agent_id);
CREATE INDEX IF NOT EXISTS agents_alive_idx ON agents (book) WHERE alive;
CREATE INDEX IF NOT EXISTS agents_arrivals_idx ON agents (book, joined_epoch DESC, name);
CREATE INDEX IF NOT EXISTS agents_parent_idx ON agents (parent_agent_id) WHERE parent_agent_id IS NOT NULL;
