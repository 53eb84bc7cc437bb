"""Integrity: the invariants of a sound fabric as violation counts (asset checks, the PHASE job and
the fault benchmark all read these, one copy), and the tables' row counts."""

from __future__ import annotations

import uuid

from psycopg import sql

INTEGRITY_CHECKS = {
    # each query counts violations; zero everywhere is a sound fabric
    "committed_without_chapter": "SELECT count(*) AS n FROM simulation_epochs e WHERE e.status = 'committed'"
    " AND NOT EXISTS (SELECT 1 FROM chapters c WHERE c.epoch_id = e.epoch_id) {epoch_and}",
    "duplicate_chapters": "SELECT count(*) AS n FROM (SELECT c.book, c.chapter_number FROM chapters c"
    " JOIN simulation_epochs e USING (epoch_id) WHERE TRUE {epoch_and} GROUP BY 1, 2 HAVING count(*) > 1) d",
    "self_votes": "SELECT count(*) AS n FROM peer_votes v JOIN simulation_epochs e USING (epoch_id)"
    " WHERE v.voter_agent = v.target_agent {epoch_and}",
    # a voter's votes are exactly its assigned drafts (review_assignments); an epoch recorded before
    # the design was: every other draft
    "incomplete_ballots": "SELECT count(*) AS n FROM (SELECT v.epoch_id, v.voter_agent, count(*) AS votes,"
    " count(DISTINCT v.target_agent) AS targets, count(r.target_agent) AS assigned_votes FROM peer_votes v"
    " LEFT JOIN review_assignments r ON r.epoch_id = v.epoch_id AND r.voter_agent = v.voter_agent"
    " AND r.target_agent = v.target_agent GROUP BY 1, 2) b"
    " JOIN (SELECT epoch_id, count(*) AS drafts FROM drafts GROUP BY 1) d USING (epoch_id)"
    " LEFT JOIN (SELECT epoch_id, voter_agent, count(*) AS assigned FROM review_assignments GROUP BY 1, 2) a"
    " USING (epoch_id, voter_agent)"
    " JOIN simulation_epochs e USING (epoch_id)"
    " WHERE (b.targets <> b.votes OR CASE WHEN EXISTS (SELECT 1 FROM review_assignments x"
    " WHERE x.epoch_id = b.epoch_id) THEN b.assigned_votes <> b.votes OR b.votes <> coalesce(a.assigned, 0)"
    " ELSE b.votes <> d.drafts - 1 END) {epoch_and}",
    "orphan_votes": "SELECT count(*) AS n FROM peer_votes v JOIN simulation_epochs e USING (epoch_id)"
    " WHERE NOT EXISTS (SELECT 1 FROM drafts d WHERE d.epoch_id = v.epoch_id"
    " AND d.agent_id = v.target_agent_id) {epoch_and}",
    "chapters_of_open_epochs": "SELECT count(*) AS n FROM chapters c JOIN simulation_epochs e USING (epoch_id)"
    " WHERE e.status NOT IN ('committed', 'collapsed') {epoch_and}",
    # the Reaper seats one replacement per eliminated agent (counted at the epoch that seated them)
    "duplicate_replacements": "SELECT count(*) AS n FROM (SELECT a.replaced_agent_id FROM agents a"
    " JOIN simulation_epochs e ON e.book = a.book AND e.epoch_number = a.joined_epoch - 1"
    " WHERE a.replaced_agent_id IS NOT NULL {epoch_and} GROUP BY 1 HAVING count(*) > 1) r",
    # an epoch opens only after its predecessor committed, and only the latest one can be promoted back
    # open: an open or half-committed epoch behind a later one of its book was left behind
    "open_behind_a_later_epoch": "SELECT count(*) AS n FROM simulation_epochs e WHERE e.status <> 'committed'"
    " AND EXISTS (SELECT 1 FROM simulation_epochs l WHERE l.book = e.book AND l.epoch_number > e.epoch_number)"
    " {epoch_and}",
    # a domain with tests (an epoch that posed a CodeRepair task): every candidate of a committed epoch was run
    "untested_candidates": "SELECT count(*) AS n FROM drafts d JOIN simulation_epochs e USING (epoch_id)"
    " JOIN repair_tasks r USING (epoch_id) WHERE e.status = 'committed'"
    " AND NOT EXISTS (SELECT 1 FROM candidate_tests t WHERE t.draft_id = d.draft_id) {epoch_and}",
}


class IntegrityMixin:
    """Violation counts over the whole fabric or one epoch; all zero when the record is sound."""

    def integrity(self, epoch_id: uuid.UUID | None = None) -> dict[str, int]:
        """Violation counts over the whole fabric, or one epoch: all zero when the record is sound."""
        epoch_and = sql.SQL("AND e.epoch_id = {}").format(sql.Literal(epoch_id)) if epoch_id else sql.SQL("")
        with self.connection() as conn:
            return {
                name: conn.execute(sql.SQL(query).format(epoch_and=epoch_and)).fetchone()["n"]
                for name, query in INTEGRITY_CHECKS.items()
            }

    def table_counts(self) -> dict[str, int]:
        """Row counts of the fabric's tables (for status output and tests)."""
        tables = ["domains", "agents", "simulation_epochs", "drafts", "peer_votes", "vote_abstentions",
                  "elo_ratings", "voter_flags", "chapters", "book_summaries", "alternate_worlds", "llm_calls",
                  "telemetry"]
        with self.connection() as conn:
            return {
                t: conn.execute(
                    sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(t))
                ).fetchone()["n"]
                for t in tables
            }
