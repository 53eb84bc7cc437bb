"""Drafts, ballots and ratings of an open epoch: each write replaces the epoch's rows in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import psycopg
from psycopg.types.json import Jsonb

from dream_pipeline.records import (
    AbstentionRow,
    AssignmentRow,
    BallotWeight,
    DraftRow,
    RatingRow,
    VoterFlag,
    VoteRow,
)
from resources.fabric.canon import refuse_committed
from resources.fabric.rows import as_list, as_vector, vote_from_row

# The vote step's writes each lock the epoch's row, refuse a committed epoch and clear what they replace in
# one statement: the lock comes first (the other parts read it), and nothing is changed when the epoch is
# committed; `_refuse_if_committed` then raises as `refuse_committed` does.
_CLEAR_VOTES = (
    "WITH epoch AS (SELECT status FROM simulation_epochs WHERE epoch_id = %(epoch)s FOR UPDATE),"
    " writable AS (SELECT NOT EXISTS (SELECT 1 FROM epoch WHERE status = 'committed') AS ok),"
    " votes AS (DELETE FROM peer_votes WHERE epoch_id = %(epoch)s AND (SELECT ok FROM writable)),"
    " abstentions AS (DELETE FROM vote_abstentions WHERE epoch_id = %(epoch)s AND (SELECT ok FROM writable)),"
    " design AS (DELETE FROM review_assignments WHERE epoch_id = %(epoch)s AND (SELECT ok FROM writable))"
    " SELECT status FROM epoch"
)
_CLEAR_DESIGN = (
    "WITH epoch AS (SELECT status FROM simulation_epochs WHERE epoch_id = %(epoch)s FOR UPDATE),"
    " writable AS (SELECT NOT EXISTS (SELECT 1 FROM epoch WHERE status = 'committed') AS ok),"
    " design AS (DELETE FROM review_assignments WHERE epoch_id = %(epoch)s AND (SELECT ok FROM writable))"
    " SELECT status FROM epoch"
)
_CLEAR_BALLOT = (
    "WITH epoch AS (SELECT status FROM simulation_epochs WHERE epoch_id = %(epoch)s FOR UPDATE),"
    " writable AS (SELECT NOT EXISTS (SELECT 1 FROM epoch WHERE status = 'committed') AS ok),"
    " votes AS (DELETE FROM peer_votes WHERE epoch_id = %(epoch)s AND voter_agent = %(voter)s"
    "   AND (SELECT ok FROM writable)),"
    " abstentions AS (DELETE FROM vote_abstentions WHERE epoch_id = %(epoch)s AND voter_agent = %(voter)s"
    "   AND (SELECT ok FROM writable))"
    " SELECT status FROM epoch"
)
_MASKED_TERMS = (  # every draft of the epoch at once: its agent's terms, else none
    "WITH epoch AS (SELECT status FROM simulation_epochs WHERE epoch_id = %(epoch)s FOR UPDATE),"
    " writable AS (SELECT NOT EXISTS (SELECT 1 FROM epoch WHERE status = 'committed') AS ok),"
    " masked AS (UPDATE drafts SET masked_terms = coalesce(%(terms)s::jsonb -> agent_id::text, '{}'::jsonb)"
    "   WHERE epoch_id = %(epoch)s AND (SELECT ok FROM writable))"
    " SELECT status FROM epoch"
)


def _refuse_if_committed(conn: psycopg.Connection, epoch_id: uuid.UUID, row: Mapping | None) -> None:
    """After a guarded statement (which changed nothing on a committed epoch): raise `CanonLocked`."""
    if row is not None and row["status"] == "committed":
        refuse_committed(conn, epoch_id)


def insert_review_design(conn: psycopg.Connection, epoch_id: uuid.UUID,
                          assignments: Sequence[AssignmentRow]) -> None:
    conn.execute("DELETE FROM review_assignments WHERE epoch_id = %s", (epoch_id,))
    _insert_design(conn, epoch_id, assignments)


def _insert_design(conn: psycopg.Connection, epoch_id: uuid.UUID, assignments: Sequence[AssignmentRow]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO review_assignments (epoch_id, voter_agent, target_agent, voter_agent_id,"
            " target_agent_id, masked_label, position, shown_chars) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (epoch_id, a.voter_agent, a.target_agent, a.voter_agent_id, a.target_agent_id,
                 a.masked_label, a.position, a.shown_chars)
                for a in assignments
            ],
        )


def insert_ballots(conn: psycopg.Connection, epoch_id: uuid.UUID, votes: Sequence[VoteRow],
                    abstentions: Sequence[AbstentionRow]) -> None:
    """Insert votes and abstentions (a ballot has one or the other: no statement is sent for none)."""
    with conn.cursor() as cur:
        if votes:
            cur.executemany(
                "INSERT INTO peer_votes (epoch_id, voter_agent, target_agent, insight_score,"
                " latency_penalty, rationale, masked_label, position, voter_agent_id, target_agent_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        epoch_id, v.voter_agent, v.target_agent, v.insight_score, v.latency_penalty,
                        v.rationale, v.masked_label, v.position, v.voter_agent_id, v.target_agent_id,
                    )
                    for v in votes
                ],
            )
        if abstentions:
            cur.executemany(
                "INSERT INTO vote_abstentions (epoch_id, voter_agent, reason, raw_reply) VALUES (%s, %s, %s, %s)",
                [(epoch_id, a.voter_agent, a.reason, a.raw_reply) for a in abstentions],
            )


class BallotsMixin:
    """What an epoch's agents wrote, how they voted, and the ratings the votes gave."""

    def write_drafts(self, epoch_id: uuid.UUID, drafts: Sequence[DraftRow],
                     context_chapters: Sequence[int] = (), context_window: int | None = None) -> list[uuid.UUID]:
        """Replace the epoch's drafts (and so everything downstream of them) in one transaction, with
        the chapters their prompt retrieved (`book_memory`'s `retrieved`) and the context window their
        requests were fitted into (None: unbounded)."""
        with self.connection() as conn:
            refuse_committed(conn, epoch_id)
            # the chapter of an uncommitted (collapsed) epoch goes with the drafts it was chosen from
            conn.execute("DELETE FROM book_summaries WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM chapters WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM drafts WHERE epoch_id = %s", (epoch_id,))
            conn.execute("UPDATE simulation_epochs SET context_chapters = %s, context_window = %s WHERE epoch_id = %s",
                         (list(context_chapters), context_window, epoch_id))
            # stable ids: a rerun or replay of the epoch rewrites the same draft rows
            ids = [d.draft_id or uuid.uuid5(epoch_id, str(d.agent_id)) for d in drafts]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO drafts (draft_id, epoch_id, agent_id, agent_name, text, prompt_tokens,"
                    " completion_tokens, finish_reason, truncated, latency_s, latency_penalty, penalty, embedding,"
                    " canon_similarity, novelty_penalty, peer_similarity, near_duplicate_of)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            i, epoch_id, d.agent_id, d.agent_name, d.text, d.prompt_tokens, d.completion_tokens,
                            d.finish_reason, d.truncated, d.latency_s, d.latency_penalty, d.penalty,
                            as_vector(d.embedding), d.canon_similarity, d.novelty_penalty, d.peer_similarity,
                            d.near_duplicate_of,
                        )
                        for i, d in zip(ids, drafts, strict=True)
                    ],
                )
            return ids

    def drafts(self, epoch_id: uuid.UUID) -> list[DraftRow]:
        with self.connection() as conn:
            return self._drafts(conn, epoch_id)

    @staticmethod
    def _drafts(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[DraftRow]:
        rows = conn.execute("SELECT * FROM drafts WHERE epoch_id = %s ORDER BY agent_name", (epoch_id,)).fetchall()
        return [
            DraftRow(
                agent_id=r["agent_id"], agent_name=r["agent_name"], text=r["text"],
                prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
                finish_reason=r["finish_reason"], truncated=r["truncated"], latency_s=r["latency_s"],
                latency_penalty=r["latency_penalty"], penalty=r["penalty"],
                embedding=as_list(r["embedding"]), draft_id=r["draft_id"],
                canon_similarity=r["canon_similarity"], novelty_penalty=r["novelty_penalty"],
                peer_similarity=r["peer_similarity"], near_duplicate_of=r["near_duplicate_of"],
            )
            for r in rows
        ]

    def forfeits(self, epoch_id: uuid.UUID) -> list[str]:
        """Rostered agents without a draft in the epoch."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT a.name FROM simulation_epochs e JOIN agents a ON a.agent_id = ANY(e.active_agent_ids)"
                " WHERE e.epoch_id = %s AND NOT EXISTS"
                " (SELECT 1 FROM drafts d WHERE d.epoch_id = e.epoch_id AND d.agent_id = a.agent_id)"
                " ORDER BY a.name",
                (epoch_id,),
            )
            return [r["name"] for r in rows]

    def write_masked_terms(self, epoch_id: uuid.UUID, masked: Mapping[uuid.UUID, Mapping[str, int]]) -> None:
        """What de-identification masked in each draft (by agent id) before the voters read it, in one
        statement; the drafts' texts are untouched."""
        terms = Jsonb({str(agent_id): dict(t) for agent_id, t in masked.items()})
        with self.connection() as conn:
            row = conn.execute(_MASKED_TERMS, {"epoch": epoch_id, "terms": terms}).fetchone()
            _refuse_if_committed(conn, epoch_id, row)

    def clear_votes(self, epoch_id: uuid.UUID) -> None:
        """Remove an open epoch's ballots and review design before its voters vote again (a rerun), in one
        statement."""
        with self.connection() as conn:
            _refuse_if_committed(conn, epoch_id, conn.execute(_CLEAR_VOTES, {"epoch": epoch_id}).fetchone())

    def write_review_design(self, epoch_id: uuid.UUID, assignments: Sequence[AssignmentRow]) -> None:
        """The open epoch's review design (who reviews which draft, as shown), replaced in one transaction
        before the ballots are asked for, so the deck and the checks know what each voter owes."""
        with self.connection() as conn:
            _refuse_if_committed(conn, epoch_id, conn.execute(_CLEAR_DESIGN, {"epoch": epoch_id}).fetchone())
            _insert_design(conn, epoch_id, assignments)

    def write_ballot(self, epoch_id: uuid.UUID, votes: Sequence[VoteRow], abstention: AbstentionRow | None) -> None:
        """One voter's ballot (its votes, or its abstention) as it arrives, in one transaction of two
        statements; writing it again replaces it, so a rerun never duplicates a vote."""
        voter = abstention.voter_agent if abstention else votes[0].voter_agent
        with self.connection() as conn:
            row = conn.execute(_CLEAR_BALLOT, {"epoch": epoch_id, "voter": voter}).fetchone()
            _refuse_if_committed(conn, epoch_id, row)
            insert_ballots(conn, epoch_id, votes, [abstention] if abstention else [])

    def votes(self, epoch_id: uuid.UUID) -> list[VoteRow]:
        with self.connection() as conn:
            return self._votes(conn, epoch_id)

    @staticmethod
    def _votes(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[VoteRow]:
        rows = conn.execute(
            "SELECT * FROM peer_votes WHERE epoch_id = %s ORDER BY voter_agent, position", (epoch_id,)
        ).fetchall()
        return [vote_from_row(r) for r in rows]

    def review_assignments(self, epoch_id: uuid.UUID) -> list[AssignmentRow]:
        """The epoch's review design: who was assigned which draft, in ballot order."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT voter_agent, target_agent, voter_agent_id, target_agent_id, masked_label, position,"
                " shown_chars FROM review_assignments WHERE epoch_id = %s ORDER BY voter_agent, position",
                (epoch_id,),
            ).fetchall()
        return [AssignmentRow(**r) for r in rows]

    def abstentions(self, epoch_id: uuid.UUID) -> list[AbstentionRow]:
        with self.connection() as conn:
            return self._abstentions(conn, epoch_id)

    @staticmethod
    def _abstentions(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[AbstentionRow]:
        rows = conn.execute(
            "SELECT * FROM vote_abstentions WHERE epoch_id = %s ORDER BY voter_agent", (epoch_id,)
        ).fetchall()
        return [AbstentionRow(r["voter_agent"], r["reason"], r["raw_reply"]) for r in rows]

    def ratings_before(self, book: str, epoch_number: int,
                       agent_ids: Sequence[uuid.UUID] | None = None) -> dict[uuid.UUID, float]:
        """Each agent's rating after the latest earlier epoch it took part in; only `agent_ids`' when
        given (an epoch's roster: read through their index, so the cost does not grow with the book)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (r.agent_id) r.agent_id, r.rating_after"
                " FROM elo_ratings r JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.book = %(book)s AND e.epoch_number < %(number)s"
                " AND (%(all)s OR r.agent_id = ANY(%(agents)s))"
                " ORDER BY r.agent_id, e.epoch_number DESC",
                {"book": book, "number": epoch_number, "all": agent_ids is None, "agents": list(agent_ids or [])},
            )
            return {r["agent_id"]: r["rating_after"] for r in rows}

    def write_ratings(
        self,
        epoch_id: uuid.UUID,
        ratings: Sequence[RatingRow],
        winner_id: uuid.UUID,
        loser_id: uuid.UUID | None,
        *,
        bottom_separated: bool | None = None,
        flags: Sequence[VoterFlag] = (),
        weights: Sequence[BallotWeight] = (),
    ) -> None:
        """Replace the epoch's ratings, voter flags and ballot weights and record its winner and loser,
        in one transaction."""
        with self.connection() as conn:
            refuse_committed(conn, epoch_id)
            conn.execute("DELETE FROM elo_ratings WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM voter_flags WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM ballot_weights WHERE epoch_id = %s", (epoch_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO ballot_weights (epoch_id, voter_agent, weight, reason, position_correction)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(epoch_id, w.voter_agent, w.weight, w.reason,
                      Jsonb({str(p): c for p, c in w.position_correction.items()})) for w in weights],
                )
                cur.executemany(
                    "INSERT INTO elo_ratings (epoch_id, agent_id, agent_name, rating_before, rating_after,"
                    " epoch_score, penalty, rank, bt_rating, bt_lower, bt_upper, elimination_score, window_mean,"
                    " window_epochs) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (epoch_id, r.agent_id, r.agent_name, r.rating_before, r.rating_after,
                         r.epoch_score, r.penalty, r.rank, r.bt_rating, r.bt_lower, r.bt_upper,
                         r.elimination_score, r.window_mean, r.window_epochs)
                        for r in ratings
                    ],
                )
                cur.executemany(
                    "INSERT INTO voter_flags (epoch_id, kind, voter_agent, partner, strength)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(epoch_id, f.kind, f.voter_agent, f.partner, f.strength) for f in flags],
                )
            conn.execute(
                "UPDATE simulation_epochs SET winner_agent_id = %s, loser_agent_id = %s, bottom_separated = %s"
                " WHERE epoch_id = %s",
                (winner_id, loser_id, bottom_separated, epoch_id),
            )

    def voter_flags(self, epoch_id: uuid.UUID) -> list[VoterFlag]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM voter_flags WHERE epoch_id = %s ORDER BY kind, voter_agent, partner", (epoch_id,)
            )
            return [VoterFlag(r["kind"], r["voter_agent"], r["partner"], r["strength"]) for r in rows]

    def recent_flags(self, book: str, epoch_number: int, window: int) -> list[VoterFlag]:
        """Voter flags raised at the `window` epochs up to and including `epoch_number`."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT f.* FROM voter_flags f JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.book = %s AND e.epoch_number BETWEEN %s AND %s"
                " ORDER BY e.epoch_number, f.kind, f.voter_agent, f.partner",
                (book, epoch_number - window + 1, epoch_number),
            )
            return [VoterFlag(r["kind"], r["voter_agent"], r["partner"], r["strength"]) for r in rows]

    def ballot_weights(self, epoch_id: uuid.UUID) -> list[BallotWeight]:
        with self.connection() as conn:
            rows = conn.execute("SELECT * FROM ballot_weights WHERE epoch_id = %s ORDER BY voter_agent", (epoch_id,))
            return [BallotWeight(r["voter_agent"], r["weight"], r["reason"],
                                 {int(p): c for p, c in r["position_correction"].items()}) for r in rows]

    def recent_votes(self, book: str, epoch_number: int, window: int) -> list[tuple[int, VoteRow, float]]:
        """Votes of the `window` epochs up to and including `epoch_number`, with each target's penalty."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT e.epoch_number, v.*, d.penalty AS target_penalty FROM peer_votes v"
                " JOIN simulation_epochs e USING (epoch_id)"
                " JOIN drafts d ON d.epoch_id = v.epoch_id AND d.agent_id = v.target_agent_id"
                " WHERE e.book = %s AND e.epoch_number BETWEEN %s AND %s"
                " ORDER BY e.epoch_number, v.voter_agent, v.position",
                (book, epoch_number - window + 1, epoch_number),
            ).fetchall()
        return [
            (r["epoch_number"], vote_from_row(r), r["target_penalty"])
            for r in rows
        ]

    def recent_draft_lengths(self, book: str, epoch_number: int, window: int) -> dict[tuple[int, str], tuple[int, bool]]:
        """``(epoch, agent name) -> (completion tokens, truncated)`` of the drafts of the `window` epochs up to
        and including `epoch_number`: what the elimination rule reads a writer's verbosity from."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT e.epoch_number, d.agent_name, d.completion_tokens, d.truncated FROM drafts d"
                " JOIN simulation_epochs e USING (epoch_id)"
                " WHERE e.book = %s AND e.epoch_number BETWEEN %s AND %s",
                (book, epoch_number - window + 1, epoch_number),
            ).fetchall()
        return {(r["epoch_number"], r["agent_name"]): (r["completion_tokens"] or 0, bool(r["truncated"])) for r in rows}

    def ratings(self, epoch_id: uuid.UUID) -> list[RatingRow]:
        with self.connection() as conn:
            return self._ratings(conn, epoch_id)

    @staticmethod
    def _ratings(conn: psycopg.Connection, epoch_id: uuid.UUID) -> list[RatingRow]:
        rows = conn.execute("SELECT * FROM elo_ratings WHERE epoch_id = %s ORDER BY rank", (epoch_id,))
        return [
            RatingRow(r["agent_id"], r["agent_name"], r["rating_before"], r["rating_after"],
                      r["epoch_score"], r["penalty"], r["rank"], r["bt_rating"], r["bt_lower"], r["bt_upper"],
                      r["elimination_score"], r["window_mean"], r["window_epochs"])
            for r in rows
        ]
