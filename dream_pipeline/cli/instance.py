"""The Dagster instance the CLI uses: DAGSTER_HOME under .dream/, storage in PostgreSQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg

from resources import embedded_postgres
from resources.locations import PROJECT_ROOT, state_dir


def dagster_storage_url() -> str:
    """Dagster's own storage: the embedded `dagster` database, or the fabric's server when configured."""
    explicit = os.environ.get("DREAM_DAGSTER_STORAGE_URL")
    if explicit:
        return explicit
    fabric_url = os.environ.get("DREAM_DATABASE_URL")
    url = fabric_url or embedded_postgres.embedded_url(embedded_postgres.DAGSTER_DATABASE)
    parts = urlsplit(url)
    scheme = "postgresql+psycopg2" if parts.scheme in ("postgresql", "postgres") else parts.scheme
    return urlunsplit((scheme, *parts[1:]))


def prepare_dagster_home() -> Path:
    """Install the dagster.yaml template (DREAM_DAGSTER_YAML, default deploy/dagster.yaml) into
    DAGSTER_HOME and export what it reads."""
    home = Path(os.environ.get("DAGSTER_HOME") or state_dir() / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    template = Path(os.environ.get("DREAM_DAGSTER_YAML") or PROJECT_ROOT / "deploy" / "dagster.yaml")
    shutil.copyfile(template, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DREAM_DAGSTER_STORAGE_URL"] = dagster_storage_url()
    return home


def dagster_instance() -> dg.DagsterInstance:
    prepare_dagster_home()
    return dg.DagsterInstance.get()
