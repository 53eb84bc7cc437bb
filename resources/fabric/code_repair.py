"""CodeRepair's record: the task an epoch posed, each candidate's hidden-test run, each voter's calibration
(sql/014_code_repair.sql). Part of a committed epoch's record (CANON_TABLES): written only while the epoch
is open, each write replacing the epoch's rows in one transaction."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from resources.fabric.canon import refuse_committed


class CodeRepairMixin:
    """repair_tasks, candidate_tests, voter_calibration."""

    def write_repair_task(self, epoch_id: uuid.UUID, task: Any) -> None:
        """The task the epoch poses (a `RepairTask`); its hidden tests are not copied."""
        with self.connection() as conn:
            refuse_committed(conn, epoch_id)
            conn.execute(
                "INSERT INTO repair_tasks (epoch_id, task_id, kind, function, description, buggy, visible_tests)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (epoch_id) DO UPDATE SET task_id = EXCLUDED.task_id,"
                " kind = EXCLUDED.kind, function = EXCLUDED.function, description = EXCLUDED.description,"
                " buggy = EXCLUDED.buggy, visible_tests = EXCLUDED.visible_tests",
                (epoch_id, task.id, task.kind, task.function, task.description, task.buggy,
                 Jsonb([[t.args, t.expected] for t in task.visible])),
            )

    def write_candidate_tests(self, epoch_id: uuid.UUID, draft_ids: Mapping[str, uuid.UUID],
                              scores: Mapping[str, Any], calibration: Mapping[str, tuple[float | None, int]]) -> None:
        """Each candidate's run (by author; `draft_ids` maps an author to its draft) and each voter's
        calibration (Spearman or None, and how many of its scores it rests on), replacing the epoch's rows."""
        with self.connection() as conn:
            refuse_committed(conn, epoch_id)
            conn.execute("DELETE FROM candidate_tests WHERE epoch_id = %s", (epoch_id,))
            conn.execute("DELETE FROM voter_calibration WHERE epoch_id = %s", (epoch_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO candidate_tests (draft_id, epoch_id, code, status, passed, total, pass_rate, fitness,"
                    " detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(draft_ids[a], epoch_id, s.code, s.status, s.passed, s.total, s.pass_rate, s.fitness,
                      Jsonb(s.detail)) for a, s in sorted(scores.items())],
                )
                cur.executemany(
                    "INSERT INTO voter_calibration (epoch_id, voter_agent, spearman, n) VALUES (%s, %s, %s, %s)",
                    [(epoch_id, voter, None if rho is None or math.isnan(rho) else rho, n)
                     for voter, (rho, n) in sorted(calibration.items())],
                )

    def repair_task(self, epoch_id: uuid.UUID) -> dict[str, Any] | None:
        with self.connection() as conn:
            return conn.execute("SELECT * FROM repair_tasks WHERE epoch_id = %s", (epoch_id,)).fetchone()

    def candidate_tests(self, epoch_id: uuid.UUID) -> list[dict[str, Any]]:
        """The epoch's candidate runs with their author, by author."""
        with self.connection() as conn:
            return conn.execute(
                "SELECT d.agent_name, t.* FROM candidate_tests t JOIN drafts d USING (draft_id)"
                " WHERE t.epoch_id = %s ORDER BY d.agent_name", (epoch_id,)).fetchall()

    def voter_calibrations(self, epoch_id: uuid.UUID) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return conn.execute("SELECT * FROM voter_calibration WHERE epoch_id = %s ORDER BY voter_agent",
                                (epoch_id,)).fetchall()
