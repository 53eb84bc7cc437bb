-- Issue 17: the deck's timing summary (epochs finished, mean and p95 epoch, dead time, downtime) read every
-- epoch of the book and split each gap against `loop_downtime` on every render: 780 ms at 100,000 epochs.
-- `epoch_timing` keeps one row per committed epoch with that split done once, written by the Reaper in
-- the commit's own transaction (resources/fabric/canon.py, `reap`); the summary aggregates these rows
-- and computes only the open epochs live (deck/queries.py, `timing_summary`).

-- an epoch's duration and the gap before it (from the previous epoch's end to its start) split into dead
-- time and downtime (the part inside `loop_downtime`: the loop stopped), for epochs `p_first..p_last`
-- of a book; the same split as the deck's per-epoch telemetry
CREATE OR REPLACE FUNCTION epoch_timing_rows(p_book TEXT, p_first INT, p_last INT)
RETURNS TABLE (epoch_id UUID, book TEXT, epoch_number INT, start_time TIMESTAMPTZ, prev_end TIMESTAMPTZ,
               duration_s FLOAT8, dead_time_s FLOAT8, downtime_s FLOAT8)
LANGUAGE sql STABLE AS $$
    WITH ep AS (
        SELECT e.epoch_id, e.book, e.epoch_number, e.start_time,
               extract(epoch FROM e.end_time - e.start_time)::float8 AS duration_s,
               (SELECT p.end_time FROM simulation_epochs p WHERE p.book = e.book
                 AND p.epoch_number < e.epoch_number ORDER BY p.epoch_number DESC LIMIT 1) AS prev_end
        FROM simulation_epochs e WHERE e.book = p_book AND e.epoch_number BETWEEN p_first AND p_last)
    SELECT ep.epoch_id, ep.book, ep.epoch_number, ep.start_time, ep.prev_end, ep.duration_s,
           extract(epoch FROM ep.start_time - ep.prev_end)::float8 - o.down,
           CASE WHEN ep.prev_end IS NOT NULL THEN o.down END
    FROM ep CROSS JOIN LATERAL (
        SELECT least(coalesce(sum(extract(epoch FROM least(l.down_until, ep.start_time)
                                                 - greatest(l.down_from, ep.prev_end))), 0),
                     greatest(extract(epoch FROM ep.start_time - ep.prev_end), 0))::float8 AS down
        FROM loop_downtime l WHERE l.down_from < ep.start_time AND l.down_until > ep.prev_end) o
$$;

CREATE TABLE IF NOT EXISTS epoch_timing (
    epoch_id     UUID PRIMARY KEY REFERENCES simulation_epochs(epoch_id) ON DELETE CASCADE,
    book         TEXT NOT NULL,
    epoch_number INT NOT NULL,
    start_time   TIMESTAMPTZ NOT NULL,
    prev_end     TIMESTAMPTZ,           -- the previous epoch's end (NULL for the first epoch)
    duration_s   FLOAT8,
    dead_time_s  FLOAT8,                -- NULL for the first epoch: no gap before it
    downtime_s   FLOAT8
);
CREATE INDEX IF NOT EXISTS epoch_timing_book_idx ON epoch_timing (book, epoch_number);
CREATE INDEX IF NOT EXISTS epoch_timing_start_idx ON epoch_timing (start_time);
-- the epochs the summary computes live: running, collapsed or failed (a handful at any time)
CREATE INDEX IF NOT EXISTS simulation_epochs_uncommitted_idx ON simulation_epochs (book, epoch_number)
    WHERE status <> 'committed';

-- the deck's ratings over time pick the agents with the most epochs in a window (deck/queries.py,
-- `rating_history`): the longest-lived in order of lifespan, and those retired inside the window, through
-- an index each instead of a sort of every agent of the book (130 ms over the whole book at 100,000 epochs)
CREATE INDEX IF NOT EXISTS agents_book_span_idx ON agents (book, (retired_epoch - joined_epoch) DESC,
    retired_epoch DESC) WHERE retired_epoch IS NOT NULL;
CREATE INDEX IF NOT EXISTS agents_book_retired_idx ON agents (book, retired_epoch);

-- (re)write the timing rows of the committed epochs `p_first..p_last` of a book; returns how many
CREATE OR REPLACE FUNCTION record_epoch_timings(p_book TEXT, p_first INT, p_last INT) RETURNS INT
LANGUAGE plpgsql AS $$
DECLARE
    written INT;
BEGIN
    INSERT INTO epoch_timing (epoch_id, book, epoch_number, start_time, prev_end, duration_s, dead_time_s,
                              downtime_s)
    SELECT r.epoch_id, r.book, r.epoch_number, r.start_time, r.prev_end, r.duration_s, r.dead_time_s,
           r.downtime_s
    FROM epoch_timing_rows(p_book, p_first, p_last) r
    JOIN simulation_epochs s ON s.epoch_id = r.epoch_id AND s.status = 'committed'
    ON CONFLICT (epoch_id) DO UPDATE SET book = EXCLUDED.book, epoch_number = EXCLUDED.epoch_number,
        start_time = EXCLUDED.start_time, prev_end = EXCLUDED.prev_end, duration_s = EXCLUDED.duration_s,
        dead_time_s = EXCLUDED.dead_time_s, downtime_s = EXCLUDED.downtime_s;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- a downtime noted after the epochs it overlaps were committed (the loop resumed late) splits their gaps
-- anew: rewrite the rows whose gap it overlaps, so the table never disagrees with `loop_downtime`
CREATE OR REPLACE FUNCTION epoch_timing_after_downtime() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_epoch_timings(t.book, min(t.epoch_number), max(t.epoch_number))
    FROM epoch_timing t WHERE t.start_time > NEW.down_from AND t.prev_end < NEW.down_until
    GROUP BY t.book;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS epoch_timing_downtime ON loop_downtime;
CREATE TRIGGER epoch_timing_downtime AFTER INSERT OR UPDATE ON loop_downtime
    FOR EACH ROW EXECUTE FUNCTION epoch_timing_after_downtime();

-- the epochs committed before this migration
SELECT record_epoch_timings(book, min(epoch_number), max(epoch_number))
FROM simulation_epochs WHERE status = 'committed' GROUP BY book;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dream_reader') THEN
        GRANT SELECT ON epoch_timing TO dream_reader;
    END IF;
END
$$;
