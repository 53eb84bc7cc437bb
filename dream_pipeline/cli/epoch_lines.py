"""One line per finished epoch for the terminal of `dream start`: its run time, the dead time before it,
or why it failed. Pure: the caller passes the timeline it read and what it has already printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FAILURE_CHARS = 300


def new_epoch_lines(timeline: Sequence[dict[str, Any]], printed: set[tuple[str, str]]) -> list[str]:
    """Lines for the epochs of `timeline` (oldest first) that finished since `printed` was filled; adds
    them to `printed`. A committed epoch says its run time and the dead time since its predecessor's
    commit (to its first engine call); a failed one says why, on one line."""
    lines = []
    previous = None
    for row in timeline:
        key = (row["epoch_key"], row["status"])
        if row["status"] in ("committed", "failed") and key not in printed:
            printed.add(key)
            if row["status"] == "committed":
                began = row.get("released_at") or row["start_time"]
                run = (row["end_time"] - began).total_seconds() if row.get("end_time") and began else None
                dead = None
                if previous is not None and previous.get("end_time") and row.get("first_call_at"):
                    dead = (row["first_call_at"] - previous["end_time"]).total_seconds()
                lines.append(f"epoch {row['epoch_key']} committed" + (f" in {run:.1f} s" if run is not None else "")
                             + (f", dead time {dead:.2f} s" if dead is not None else ""))
            else:
                why = " ".join(str(row.get("failure") or "see the Dagster UI").split())[:FAILURE_CHARS]
                lines.append(f"epoch {row['epoch_key']} failed: {why} (retried with backoff)")
        previous = row
    return lines
