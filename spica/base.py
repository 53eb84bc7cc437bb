"""The SPICA template: what every domain and agent has in common.

A SPICA instance carries a manifest (what it is: immutable), state (what it knows now: mutable),
lineage (where it came from) and a telemetry buffer (what it did). `spawn_instance` makes a new
instance from the same manifest with this one as its parent, so every replacement and mutation is
traceable. Nothing here does I/O: the state fabric persists instances and drains their telemetry.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Self


@dataclass(frozen=True)
class Lineage:
    """Where an instance came from: its parent, its generation and how it was born."""

    parent_id: uuid.UUID | None = None
    generation: int = 0
    origin: str = "cast"


@dataclass(frozen=True)
class TelemetryEvent:
    instance_id: uuid.UUID
    kind: str
    event: str
    payload: Mapping[str, Any]
    epoch_key: str | None = None
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Spica:
    """Base template of every SPICA derivative (domains and agents)."""

    kind: ClassVar[str] = "spica"

    def __init__(
        self,
        manifest: Mapping[str, Any],
        *,
        instance_id: uuid.UUID | None = None,
        state: Mapping[str, Any] | None = None,
        lineage: Lineage | None = None,
    ) -> None:
        if not manifest.get("name"):
            raise ValueError(f"a {type(self).__name__} manifest needs a 'name'")
        self._manifest = MappingProxyType(copy.deepcopy(dict(manifest)))
        self.instance_id = instance_id or uuid.uuid4()
        self.state: dict[str, Any] = copy.deepcopy(dict(state or {}))
        self.lineage = lineage or Lineage()
        self._telemetry: list[TelemetryEvent] = []

    @property
    def manifest(self) -> Mapping[str, Any]:
        """Read-only: a change of manifest is a new instance (see `spawn_instance`)."""
        return self._manifest

    @property
    def name(self) -> str:
        return str(self._manifest["name"])

    def spawn_instance(self, *, manifest_changes: Mapping[str, Any] | None = None, origin: str | None = None) -> Self:
        """A new instance of the same class, manifest updated by `manifest_changes`, with self as parent."""
        manifest = {**copy.deepcopy(dict(self._manifest)), **dict(manifest_changes or {})}
        lineage = Lineage(
            parent_id=self.instance_id,
            generation=self.lineage.generation + 1,
            origin=origin or self.lineage.origin,
        )
        return type(self)(manifest, lineage=lineage)

    def record_telemetry(self, event: str, *, epoch_key: str | None = None, **payload: Any) -> TelemetryEvent:
        entry = TelemetryEvent(self.instance_id, self.kind, event, dict(payload), epoch_key)
        self._telemetry.append(entry)
        return entry

    def drain_telemetry(self) -> list[TelemetryEvent]:
        """Hand the buffered events to whoever persists them, and forget them here."""
        events, self._telemetry = self._telemetry, []
        return events

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, id={self.instance_id}, generation={self.lineage.generation})"
