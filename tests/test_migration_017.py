"""sql/017 applies on a fabric made by the previous main (migrations up to 016 applied, rows in it)."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from resources.fabric import StateFabric
from resources.locations import sql_dir
from tests.fabric_helpers import scratch_database


@pytest.fixture
def old_fabric_url():
    with scratch_database("m017") as url:
        yield url


def test_017_applies_over_a_fabric_of_the_previous_main(old_fabric_url):
    earlier = [p for p in sorted(sql_dir().glob("*.sql")) if p.name < "017"]
    assert earlier[-1].name.startswith("01") and len(earlier) >= 13
    with psycopg.connect(old_fabric_url) as conn:  # what the previous main's migrate() left
        conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
                     " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for path in earlier:
            text = path.read_text(encoding="utf-8")
            conn.execute(text)
            conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                         (path.name, hashlib.sha256(text.encode()).hexdigest()))
        conn.execute("INSERT INTO domains (domain_id, instance_id, kind, manifest)"
                     " VALUES ('space_time', gen_random_uuid(), 'book', '{}')")
        conn.execute("INSERT INTO simulation_epochs (epoch_key, book, epoch_number, active_agent_ids)"
                     " VALUES ('space_time-00001', 'space_time', 1, '{}')")
    applied = StateFabric(database_url=old_fabric_url).migrate()
    assert [name for name in applied if name.startswith("017")] == ["017_scale_indexes.sql"]
    with psycopg.connect(old_fabric_url) as conn:
        assert conn.execute("SELECT to_regclass('simulation_epochs_start_idx') IS NOT NULL").fetchone()[0]
        assert conn.execute("SELECT epoch_key FROM simulation_epochs").fetchall() == [("space_time-00001",)]
        conn.execute("SET enable_seqscan = off")  # one row: the planner would scan it otherwise
        plan = " ".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT * FROM simulation_epochs ORDER BY start_time DESC LIMIT 5").fetchall())
        assert "simulation_epochs_start_idx" in plan
