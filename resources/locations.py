"""Where the project keeps its local runtime state (embedded database, engine pid file, DAGSTER_HOME).

Everything lives under one git-ignored folder so a fresh clone starts clean and a second command
reuses what the first one started.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def state_dir() -> Path:
    """The runtime folder: `DREAM_STATE_DIR` if set, else `.dream/` in the project checkout."""
    configured = os.environ.get("DREAM_STATE_DIR")
    path = Path(configured).expanduser() if configured else PROJECT_ROOT / ".dream"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def sql_dir() -> Path:
    """The ordered migrations of the state fabric."""
    return PROJECT_ROOT / "sql"
