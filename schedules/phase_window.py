"""The PHASE window (03:00–07:00 by default, in a configurable time zone): no new epoch starts inside it.

A pure decision over an injected clock, so the gate is tested by passing times, not by waiting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class PhaseWindow:
    start: time = time(3, 0)
    end: time = time(7, 0)
    timezone: str = "UTC"

    def contains(self, moment: datetime) -> bool:
        """True when `moment` (timezone-aware) falls inside the window; windows may cross midnight."""
        if moment.tzinfo is None:
            raise ValueError("PhaseWindow.contains needs a timezone-aware datetime")
        local = moment.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def phase_window_from_env() -> PhaseWindow:
    """`DREAM_PHASE_START`, `DREAM_PHASE_END` (HH:MM) and `DREAM_PHASE_TZ` (IANA name)."""
    try:
        return PhaseWindow(
            start=time.fromisoformat(os.environ.get("DREAM_PHASE_START", "03:00")),
            end=time.fromisoformat(os.environ.get("DREAM_PHASE_END", "07:00")),
            timezone=_zone(os.environ.get("DREAM_PHASE_TZ", "UTC")),
        )
    except ValueError as exc:
        raise ValueError(f"bad PHASE window setting (DREAM_PHASE_START/END as HH:MM): {exc}") from None


def _zone(name: str) -> str:
    ZoneInfo(name)  # raises a clear error for an unknown zone
    return name
