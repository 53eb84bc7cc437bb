"""The PHASE window as a pure rule over an injected clock: its edges, zones, midnight, and settings."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from dream_pipeline.defs.phase.window import PhaseWindow, machine_timezone, phase_window_from_env

PARIS = ZoneInfo("Europe/Paris")


def utc(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, micro, tzinfo=UTC)


def test_the_default_window_is_three_to_seven_utc():
    assert PhaseWindow() == PhaseWindow(time(3, 0), time(7, 0), "UTC")


@pytest.mark.parametrize(("moment", "inside"), [
    (utc(14, 2, 59, 59, 999_999), False), (utc(14, 3), True), (utc(14, 6, 59, 59), True), (utc(14, 7), False),
    (utc(14, 12), False), (utc(14, 0), False),
])
def test_a_same_day_window_holds_its_start_and_not_its_end(moment, inside):
    assert PhaseWindow().contains(moment) is inside


@pytest.mark.parametrize(("hour", "minute", "inside"), [
    (22, 59, False), (23, 0, True), (23, 30, True), (0, 0, True), (0, 59, True), (1, 0, False), (12, 0, False),
])
def test_a_window_across_midnight(hour, minute, inside):
    window = PhaseWindow(start=time(23, 0), end=time(1, 0))
    assert window.contains(utc(14, hour, minute)) is inside


def test_the_window_is_read_in_its_own_time_zone():
    window = PhaseWindow(timezone="Europe/Paris")  # 03:00-07:00 Paris = 02:00-06:00 UTC in March (CET)
    assert window.contains(utc(14, 2, 0)) and window.contains(utc(14, 5, 59))
    assert not window.contains(utc(14, 6, 0)) and not window.contains(utc(14, 1, 59))
    assert window.contains(datetime(2026, 3, 14, 3, 0, tzinfo=PARIS))


def test_a_naive_clock_is_refused():
    with pytest.raises(ValueError, match=r"^PhaseWindow.contains needs a timezone-aware datetime$"):
        PhaseWindow().contains(datetime(2026, 3, 14, 4, 0))


def test_when_the_window_opened_and_closes():
    window = PhaseWindow(start=time(3, 30), end=time(7, 45))
    assert window.opened_at(utc(14, 5, 17, 42, 123)) == utc(14, 3, 30)
    assert window.opened_at(utc(14, 3, 30)) == utc(14, 3, 30)
    assert window.opened_at(utc(14, 3, 29, 59)) == utc(13, 3, 30)  # before today's start: yesterday's window
    assert window.opened_at(utc(14, 23, 0)) == utc(14, 3, 30)
    assert window.closes_at(utc(14, 5, 0)) == utc(14, 7, 45)
    assert window.closes_at(utc(14, 2, 0)) == utc(13, 7, 45)
    opened = window.opened_at(utc(14, 5, 17, 42, 123))
    assert (opened.second, opened.microsecond) == (0, 0)


def test_a_window_across_midnight_closes_the_next_day():
    window = PhaseWindow(start=time(23, 15), end=time(1, 20))
    assert window.opened_at(utc(14, 23, 30)) == utc(14, 23, 15)
    assert window.closes_at(utc(14, 23, 30)) == utc(15, 1, 20)
    assert window.opened_at(utc(15, 0, 30)) == utc(14, 23, 15)
    assert window.closes_at(utc(15, 0, 30)) == utc(15, 1, 20)
    # a window with equal ends closes a day after it opens
    assert PhaseWindow(start=time(4, 0), end=time(4, 0)).closes_at(utc(14, 5)) == utc(15, 4, 0)


def test_opening_and_closing_in_the_windows_zone():
    window = PhaseWindow(start=time(3, 0), end=time(7, 0), timezone="Europe/Paris")
    opened = window.opened_at(utc(14, 4, 0))  # 05:00 in Paris
    assert opened == datetime(2026, 3, 14, 3, 0, tzinfo=PARIS) == utc(14, 2, 0)
    assert window.closes_at(utc(14, 4, 0)) == utc(14, 6, 0)


def test_phase_blocks_until_it_completes_in_this_window():
    window = PhaseWindow()
    now = utc(14, 4, 0)
    assert window.blocks(now, None)
    assert window.blocks(now, utc(14, 2, 59, 59))  # completed before this window opened: last night's
    assert not window.blocks(now, utc(14, 3, 0))  # completed the moment it opened
    assert not window.blocks(now, utc(14, 3, 40))
    assert not window.blocks(utc(14, 7, 0), None)  # the window is over
    assert not window.blocks(utc(14, 2, 0), None)


def test_settings_shape_the_window(monkeypatch):
    monkeypatch.setenv("DREAM_PHASE_START", "02:15")
    monkeypatch.setenv("DREAM_PHASE_END", "05:45")
    monkeypatch.setenv("DREAM_PHASE_TZ", "Europe/Paris")
    assert phase_window_from_env() == PhaseWindow(time(2, 15), time(5, 45), "Europe/Paris")


def test_the_default_window_is_in_the_machines_zone(monkeypatch):
    for name in ("DREAM_PHASE_START", "DREAM_PHASE_END", "DREAM_PHASE_TZ"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert phase_window_from_env() == PhaseWindow(time(3, 0), time(7, 0), "Asia/Tokyo")
    monkeypatch.setenv("TZ", ":America/New_York")  # the POSIX ':' prefix is dropped
    assert machine_timezone() == "America/New_York"


def test_without_tz_the_zone_comes_from_etc_localtime(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    target = os.path.realpath("/etc/localtime")
    expected = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else "UTC"
    assert machine_timezone() == expected
    monkeypatch.setattr(os.path, "realpath", lambda path: "/usr/share/zoneinfo/Europe/Lisbon")
    assert machine_timezone() == "Europe/Lisbon"
    monkeypatch.setattr(os.path, "realpath", lambda path: "/etc/localtime")  # not a zoneinfo link
    assert machine_timezone() == "UTC"

    def missing(path):
        raise OSError("no such file")

    monkeypatch.setattr(os.path, "realpath", missing)
    assert machine_timezone() == "UTC"


@pytest.mark.parametrize(("name", "value"), [("DREAM_PHASE_START", "3am"), ("DREAM_PHASE_END", "25:00")])
def test_a_bad_time_is_a_clear_error(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=r"^bad PHASE window setting \(DREAM_PHASE_START/END as HH:MM\): "):
        phase_window_from_env()


def test_an_unknown_zone_is_refused(monkeypatch):
    monkeypatch.setenv("DREAM_PHASE_TZ", "Mars/Olympus_Mons")
    with pytest.raises(ZoneInfoNotFoundError):
        phase_window_from_env()


def test_a_window_of_a_day_in_minutes():
    """Minute by minute over a day: exactly the 240 minutes from 03:00 are inside."""
    window = PhaseWindow()
    inside = [m for m in range(24 * 60) if window.contains(utc(14, 0) + timedelta(minutes=m))]
    assert inside == list(range(180, 420))


def test_a_window_that_closes_when_it_opens_is_empty():
    window = PhaseWindow(start=time(4, 0), end=time(4, 0))
    assert [h for h in range(24) if window.contains(utc(14, h))] == []
    assert not window.blocks(utc(14, 4), None)
