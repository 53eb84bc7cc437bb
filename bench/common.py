"""What the benchmarks share: a scratch database on the embedded server, tables, the RESULT line."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from resources import embedded_postgres
from resources.fabric import StateFabric

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def scratch_fabric(name: str) -> StateFabric:
    """A fresh database `name` (dropped and recreated), or DREAM_BENCH_DATABASE_URL as it is."""
    explicit = os.environ.get("DREAM_BENCH_DATABASE_URL")
    if explicit:
        return StateFabric(database_url=explicit)
    with psycopg.connect(embedded_postgres.server_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return StateFabric(database_url=embedded_postgres.server_url(name))


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (none)")
        return
    columns = list(rows[0])
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


def print_result(figures: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(figures, sort_keys=True))
