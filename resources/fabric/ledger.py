"""The ledger: every engine call as sent and answered (what a replay reads back), and SPICA telemetry."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.types.json import Jsonb

from dream_pipeline.records import LlmCallRow, storable_json, storable_text
from spica import TelemetryEvent


class LedgerMixin:
    """`llm_calls` and `telemetry`."""

    def record_llm_calls(self, calls: Sequence[LlmCallRow]) -> None:
        """The ledger keeps each request and answer as sent, except what PostgreSQL cannot hold (NUL, lone
        surrogates: `storable_json`), which the pipeline replaces the same way, so a replay reproduces it."""
        if not calls:
            return
        with self.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO llm_calls (epoch_key, purpose, agent_name, request_hash, request, response,"
                " prompt_tokens, completion_tokens, latency_s, status, error, started_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        c.epoch_key, c.purpose, c.agent_name, c.request_hash, Jsonb(storable_json(c.request)),
                        None if c.response is None else Jsonb(storable_json(c.response)), c.prompt_tokens,
                        c.completion_tokens, c.latency_s, c.status, None if c.error is None else storable_text(c.error),
                        c.started_at,
                    )
                    for c in calls
                ],
            )

    def recorded_calls(self, epoch_key: str) -> dict[str, LlmCallRow]:
        """The successful calls of an epoch by request hash (the latest answer wins)."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM llm_calls WHERE epoch_key = %s AND status = 'ok' AND response IS NOT NULL"
                " ORDER BY created_at",
                (epoch_key,),
            ).fetchall()
        return {
            r["request_hash"]: LlmCallRow(
                r["epoch_key"], r["purpose"], r["agent_name"], r["request"], r["response"], r["prompt_tokens"],
                r["completion_tokens"], r["latency_s"], r["status"], r["error"], r["started_at"],
            )
            for r in rows
        }

    def record_telemetry(self, events: Sequence[TelemetryEvent]) -> None:
        """Persist SPICA telemetry; an epoch's event is updated on rerun, never duplicated."""
        if not events:
            return
        with self.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO telemetry (instance_id, kind, epoch_key, event, payload, recorded_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (instance_id, epoch_key, event) WHERE epoch_key IS NOT NULL"
                " DO UPDATE SET payload = EXCLUDED.payload, recorded_at = EXCLUDED.recorded_at",
                [
                    (e.instance_id, e.kind, e.epoch_key, e.event, Jsonb(dict(e.payload)), e.recorded_at)
                    for e in events
                ],
            )

    def epoch_timing(self, epoch_key: str) -> dict | None:
        """An epoch's barrier release (Unix seconds), its wall time from the release to the commit, and
        its engine critical path: slowest draft + slowest draft embedding + slowest ballot + the summary
        (the profile in the chapter's metadata and bench/epoch.py)."""
        with self.connection() as conn:
            return conn.execute(
                "SELECT extract(epoch FROM e.released_at)::float8 AS released,"
                " extract(epoch FROM e.end_time - e.released_at)::float8 AS wall_s,"
                " (SELECT coalesce(max(c.latency_s) FILTER (WHERE c.purpose = 'draft'), 0)"
                "   + coalesce(max(c.latency_s) FILTER (WHERE c.purpose = 'draft_embedding'), 0)"
                "   + coalesce(max(c.latency_s) FILTER (WHERE c.purpose = 'ballot'), 0)"
                "   + coalesce(sum(c.latency_s) FILTER (WHERE c.purpose = 'summary'), 0)"
                "  FROM llm_calls c WHERE c.epoch_key = e.epoch_key) AS critical_path_s"
                " FROM simulation_epochs e WHERE e.epoch_key = %s",
                (epoch_key,),
            ).fetchone()
