"""What the loop knows about its engine, in words: for `dream status`, preflight and run metadata."""

from __future__ import annotations

from typing import Any

from dream_pipeline.epoch.ballot_diagnosis import STALL_AFTER
from resources.engine_probe import EngineCapabilities
from resources.fabric import StateFabric


def capabilities_line(capabilities: dict[str, Any] | EngineCapabilities) -> str:
    caps = capabilities if isinstance(capabilities, EngineCapabilities) else EngineCapabilities.from_json(capabilities)
    return f"{caps.base_url} (model {caps.model}): {caps.summary()}"


def engine_lines(fabric: StateFabric, changes: int = 3) -> list[str]:
    """The engine's probed capabilities and its latest vote-mode changes, a line each."""
    latest = fabric.latest_engine_capabilities()
    if latest is None:
        return ["engine : not probed yet (the first epoch probes it)"]
    lines = [f"engine : {capabilities_line(latest)}"]
    for change in fabric.mode_changes(changes):
        lines.append(f"         {change['changed_at']:%Y-%m-%d %H:%M:%S} {change['epoch_key'] or '-'}: ballots moved "
                     f"from {change['from_mode']} to {change['to_mode']} ({change['reason'][:120]})")
    return lines


def stall_lines(fabric: StateFabric) -> list[str]:
    """An epoch stuck without valid ballots, named with its cause and what to change."""
    return [f"STALLED: {row['epoch_key']} failed {row['failures']} times in a row: {row['failure']}"
            for row in fabric.stalled_epochs(STALL_AFTER)]


def epoch_engine_metadata(modes: dict[str, Any] | None, capabilities: dict[str, Any] | None) -> dict[str, Any]:
    """Dagster metadata of an epoch step: the modes the epoch used and the engine's capabilities."""
    modes = modes or {}
    meta: dict[str, Any] = {
        "vote_mode": modes.get("vote_mode", "unknown"),
        "embedding_mode": modes.get("embedding_mode", "unknown"),
    }
    if modes.get("stepped_down_from"):
        meta["vote_mode_stepped_down_from"] = modes["stepped_down_from"]
    if capabilities:
        meta["engine"] = capabilities_line(capabilities)
        meta["engine_context_tokens"] = capabilities.get("context_tokens")
    return meta
