"""Starting the deck: `dream deck` calls `run_deck`, which replaces the process with Streamlit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from deck.queries import URL_VARIABLE

APP = Path(__file__).resolve().parent / "app.py"


def deck_command(host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The Streamlit command line serving the deck on `host:port`, headless, without usage statistics."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # a reading deck: no "Deploy" button
    ]


def prepare_embedded_fabric() -> None:
    """On the embedded default, start the server and apply the migrations (which create `dream_reader`),
    so a first `dream deck` on a fresh clone opens on an empty fabric rather than a connection error."""
    if os.environ.get(URL_VARIABLE) or os.environ.get("DREAM_DATABASE_URL"):
        return
    from resources.fabric import StateFabric

    StateFabric().migrate()


def run_deck(host: str = "127.0.0.1", port: int = 8501) -> None:
    """Serve the deck in this process (never returns)."""
    prepare_embedded_fabric()
    command = deck_command(host, port)
    print(f"Epistemic Deck: http://{host}:{port}/", flush=True)
    os.execv(command[0], command)  # noqa: S606 — a fixed command line: our interpreter running Streamlit
