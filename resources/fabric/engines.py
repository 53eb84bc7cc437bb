"""Engines: the capabilities a probe found, the modes stepped down and why, the modes an epoch used (sql/009)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from dream_pipeline.records import storable_json, storable_text


class EnginesMixin:
    """`engine_capabilities`, `engine_mode_changes` and an epoch's `engine_modes`."""

    def engine_capabilities(self, base_url: str, model: str) -> dict[str, Any] | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT capabilities FROM engine_capabilities WHERE base_url = %s AND model = %s", (base_url, model)
            ).fetchone()
        return None if row is None else row["capabilities"]

    def save_engine_capabilities(self, base_url: str, model: str, capabilities: dict[str, Any],
                                 *, probed: bool = True) -> None:
        """Store what the probe found (`probed`), or an update of it (a mode stepped down)."""
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO engine_capabilities (base_url, model, capabilities) VALUES (%s, %s, %s)"
                " ON CONFLICT (base_url, model) DO UPDATE SET capabilities = EXCLUDED.capabilities,"
                " updated_at = now(), probed_at = CASE WHEN %s THEN now() ELSE engine_capabilities.probed_at END",
                (base_url, model, Jsonb(storable_json(capabilities)), probed),
            )

    def latest_engine_capabilities(self) -> dict[str, Any] | None:
        """The engine used most recently (for `dream status` and the deck)."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT capabilities, probed_at, updated_at FROM engine_capabilities ORDER BY updated_at DESC LIMIT 1"
            ).fetchone()
        return None if row is None else {**row["capabilities"], "updated_at": row["updated_at"].isoformat()}

    def record_mode_change(self, base_url: str, model: str, epoch_key: str | None, from_mode: str, to_mode: str,
                           reason: str) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO engine_mode_changes (base_url, model, epoch_key, from_mode, to_mode, reason)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (base_url, model, epoch_key, from_mode, to_mode, storable_text(reason)[:2000]),
            )

    def mode_changes(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return conn.execute(
                "SELECT * FROM engine_mode_changes ORDER BY changed_at DESC, change_id DESC LIMIT %s", (limit,)
            ).fetchall()

    def set_engine_modes(self, epoch_key: str, modes: dict[str, Any]) -> None:
        """Merge `modes` into what the epoch records it used; a committed epoch is never changed."""
        with self.connection() as conn:
            conn.execute(
                "UPDATE simulation_epochs SET engine_modes = coalesce(engine_modes, '{}'::jsonb) || %s"
                " WHERE epoch_key = %s AND status <> 'committed'",
                (Jsonb(storable_json(modes)), epoch_key),
            )
