"""The PHASE window (03:00–07:00 by default, in a configurable time zone): no new epoch starts inside it.

A pure decision over an injected clock, so the gate is tested by passing times, not by waiting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, time, timedelta
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


    def opened_at(self, moment: datetime) -> datetime:
        """When the window containing `moment` (or the latest one before it) opened."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        start = local.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        return start if start <= local else start - timedelta(days=1)

    def closes_at(self, moment: datetime) -> datetime:
        """When the window that opened last at or before `moment` closes."""
        opened = self.opened_at(moment)
        close = opened.replace(hour=self.end.hour, minute=self.end.minute)
        return close if close > opened else close + timedelta(days=1)

    def blocks(self, moment: datetime, phase_completed_at: datetime | None) -> bool:
        """No new epoch may start: the window is open and PHASE has not completed since it opened."""
        if not self.contains(moment):
            return False
        return phase_completed_at is None or phase_completed_at < self.opened_at(moment)


def phase_window_from_env() -> PhaseWindow:
    """`DREAM_PHASE_START`, `DREAM_PHASE_END` (HH:MM) and `DREAM_PHASE_TZ` (IANA name, default: the
    machine's zone from TZ or /etc/localtime, else UTC)."""
    try:
        return PhaseWindow(
            start=time.fromisoformat(os.environ.get("DREAM_PHASE_START", "03:00")),
            end=time.fromisoformat(os.environ.get("DREAM_PHASE_END", "07:00")),
            timezone=_zone(os.environ.get("DREAM_PHASE_TZ") or machine_timezone()),
        )
    except ValueError as exc:
        raise ValueError(f"bad PHASE window setting (DREAM_PHASE_START/END as HH:MM): {exc}") from None


def _zone(name: str) -> str:
    ZoneInfo(name)  # raises a clear error for an unknown zone
    return name


def machine_timezone() -> str:
    """The machine's IANA zone name, as the PHASE schedule's default."""
    configured = os.environ.get("TZ", "").lstrip(":")
    if configured:
        return configured
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"
