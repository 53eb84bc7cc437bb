"""The loop's decision, driven by an injected clock: back to back, staged, paused by PHASE, retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from dream_pipeline.defs.epoch.partitions import epoch_key, parse_epoch_key
from dream_pipeline.defs.loop.sensors import LoopSnapshot, backoff, plan_loop
from dream_pipeline.defs.phase.window import PhaseWindow

DAY = datetime(2026, 3, 14, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def snapshot(**changes) -> LoopSnapshot:
    base = dict(now=at(12), books=("space_time",), next_numbers={"space_time": 4})
    return LoopSnapshot(**{**base, **changes})


def requested_all(decision) -> list[str]:
    assert isinstance(decision, dg.SensorResult), getattr(decision, "skip_message", decision)
    return [r.partition_key for r in decision.run_requests]


def requested(decision) -> str:
    """The epoch the tick asks for first (the one that runs next)."""
    return requested_all(decision)[0]


def test_a_cold_start_resumes_the_first_uncommitted_epoch():
    decision = plan_loop(snapshot(depth=1))
    assert requested_all(decision) == ["space_time-00004"]
    assert decision.run_requests[0].run_key == "space_time-00004#1"
    assert decision.run_requests[0].tags["dream/loop"] == "epoch"
    assert list(decision.dynamic_partitions_requests[0].partition_keys) == ["space_time-00004"]
    assert decision.cursor == "space_time-00004"


def test_one_tick_fills_every_free_staging_slot_in_order():
    decision = plan_loop(snapshot(depth=4))  # nothing live
    keys = [epoch_key("space_time", n) for n in (4, 5, 6, 7)]
    assert requested_all(decision) == keys
    assert [r.run_key for r in decision.run_requests] == [f"{k}#1" for k in keys]
    assert list(decision.dynamic_partitions_requests[0].partition_keys) == keys
    assert decision.cursor == keys[-1]
    two_live = plan_loop(snapshot(depth=4, active=("space_time-00004", "space_time-00005")))
    assert requested_all(two_live) == ["space_time-00006", "space_time-00007"]
    # an epoch in backoff holds back the ones behind it, not the ones before it
    failed = snapshot(depth=4, failures={"space_time-00006": (1, at(12) - timedelta(seconds=1))})
    assert requested_all(plan_loop(failed)) == ["space_time-00004", "space_time-00005"]


def test_the_next_epochs_are_staged_behind_the_running_one_up_to_the_depth():
    assert requested(plan_loop(snapshot(active=("space_time-00004",)))) == "space_time-00005"
    assert requested(plan_loop(snapshot(active=("space_time-00004", "space_time-00005")))) == "space_time-00006"
    full = plan_loop(snapshot(active=("space_time-00004", "space_time-00005", "space_time-00006"), depth=3))
    assert isinstance(full, dg.SkipReason)
    assert full.skip_message == "space_time-00004 is running; space_time-00005, space_time-00006 staged"
    assert isinstance(plan_loop(snapshot(depth=1, active=("space_time-00004",))), dg.SkipReason)


def test_a_gap_left_by_a_dead_run_is_filled_before_staging_further():
    # 00004 died while 00005 and 00006 were staged: its first uncommitted epoch comes first
    snap = snapshot(active=("space_time-00005", "space_time-00006"))
    assert requested(plan_loop(snap)) == "space_time-00004"


def test_books_take_turns_one_epoch_at_a_time():
    snap = snapshot(books=("space_time", "sea"), next_numbers={"space_time": 4, "sea": 9})
    assert requested(plan_loop(snap)) == "space_time-00004"
    assert requested(plan_loop(LoopSnapshot(**{**snap.__dict__, "active": ("space_time-00004",)}))) == "sea-00009"
    after = LoopSnapshot(**{**snap.__dict__, "active": ("space_time-00004", "sea-00009")})
    assert requested(plan_loop(after)) == "space_time-00005"


def test_a_failed_epoch_is_retried_with_growing_backoff():
    failed_at = at(12)
    snap = snapshot(now=failed_at + timedelta(seconds=5), failures={"space_time-00004": (1, failed_at)})
    wait = plan_loop(snap)
    assert isinstance(wait, dg.SkipReason) and "retrying in 5 s" in wait.skip_message
    retry = plan_loop(LoopSnapshot(**{**snap.__dict__, "now": failed_at + backoff(1),
                                       "previous_runs": {"space_time-00004": 3}}))
    assert retry.run_requests[0].run_key == "space_time-00004#4"  # a fresh key for every run of the epoch
    assert [backoff(n).total_seconds() for n in (0, 1, 2, 3, 4, 6, 7, 30)] == [10, 10, 20, 40, 80, 320, 600, 600]


@pytest.mark.parametrize(("failures", "wait_s"), [(1, 10), (2, 20), (3, 40), (4, 80), (6, 320), (7, 600), (12, 600)])
def test_the_loop_waits_longer_after_each_failure_of_an_epoch(failures, wait_s):
    """plan_loop itself applies the backoff for the epoch's failure count: 10 s doubling, at most 10 min."""
    failed_at = at(12)
    failures_map = {"space_time-00004": (failures, failed_at)}
    almost = plan_loop(snapshot(now=failed_at + timedelta(seconds=wait_s - 1), failures=failures_map))
    assert isinstance(almost, dg.SkipReason)
    assert almost.skip_message == f"space_time-00004 failed {failures} time(s); retrying in 1 s"
    just_failed = plan_loop(snapshot(now=failed_at, failures=failures_map))
    assert just_failed.skip_message == f"space_time-00004 failed {failures} time(s); retrying in {wait_s} s"
    due = plan_loop(snapshot(now=failed_at + timedelta(seconds=wait_s), failures=failures_map, depth=1))
    assert requested_all(due) == ["space_time-00004"]


@pytest.mark.parametrize(("hour", "minute", "blocked"), [(2, 59, False), (3, 0, True), (6, 59, True), (7, 0, False)])
def test_phase_blocks_new_epochs_with_a_reason(hour, minute, blocked):
    decision = plan_loop(snapshot(now=at(hour, minute)))
    assert isinstance(decision, dg.SkipReason) is blocked
    if blocked:
        assert "PHASE window 03:00-07:00 UTC is open" in decision.skip_message
        assert "until the PHASE job completes or 07:00" in decision.skip_message


def test_phase_completion_resumes_the_loop_before_the_window_ends():
    done = at(4, 10)
    assert isinstance(plan_loop(snapshot(now=at(4, 9), phase_completed_at=at(3, 59) - timedelta(days=1))), dg.SkipReason)
    assert requested(plan_loop(snapshot(now=at(4, 11), phase_completed_at=done))) == "space_time-00004"


def test_a_simulated_day_runs_back_to_back_and_respects_phase():
    """Minute ticks over a day; an epoch takes 37 minutes; PHASE runs 03:00–04:30."""
    window = PhaseWindow()
    epoch_minutes = 37
    next_number = 1
    active: list[str] = []  # [0] is running (if started), the rest wait at the barrier
    started: dict[str, datetime] = {}
    finished: dict[str, datetime] = {}
    cursor = None
    phase_completed_at = None
    for minute in range(24 * 60):
        now = at(0) + timedelta(minutes=minute)
        if now == at(4, 30):
            phase_completed_at = now  # the PHASE job completes: the signal to resume
        if active and active[0] in started and now - started[active[0]] >= timedelta(minutes=epoch_minutes):
            done = active.pop(0)
            finished[done] = now
            next_number = parse_epoch_key(done)[1] + 1
        if active and active[0] not in started:  # the head passed its barrier
            if window.blocks(now, phase_completed_at):
                active.pop(0)  # the roster's PHASE gate ends the staged run cleanly
            else:
                started[active[0]] = now
        decision = plan_loop(LoopSnapshot(
            now=now, books=("space_time",), next_numbers={"space_time": next_number}, active=tuple(active),
            window=window, phase_completed_at=phase_completed_at, last_key=cursor,
        ))
        if isinstance(decision, dg.SensorResult):
            cold = not active
            active.extend(requested_all(decision))
            cursor = decision.cursor
            if cold and not window.blocks(now, phase_completed_at):
                started[active[0]] = now  # a cold start goes straight through its barrier
    starts = sorted(started.values())
    assert not [s for s in starts if at(3) <= s < at(4, 30)], "no epoch starts while PHASE blocks"
    running_at_three = [k for k, s in started.items() if s < at(3) and finished.get(k, at(23)) > at(3)]
    assert len(running_at_three) == 1 and finished[running_at_three[0]] > at(3)  # it finished, not cut
    assert at(4, 30) in starts  # resumed the moment PHASE completed
    ordered = sorted(started, key=started.get)
    assert ordered == [epoch_key("space_time", n) for n in range(1, len(ordered) + 1)]  # in order, none twice
    for prev, nxt in zip(ordered, ordered[1:], strict=False):
        if prev in finished:
            assert started[nxt] >= finished[prev]  # never two at once
            if not (at(3) <= finished[prev] < at(4, 30)):
                assert started[nxt] == finished[prev]  # zero dead time outside PHASE
    assert len(ordered) >= 35


def test_dead_time_is_measured_from_commit_to_the_next_first_engine_call():
    from dream_pipeline.cli.status import dead_times

    rows = [
        {"end_time": at(1, 0), "released_at": at(0, 50), "first_call_at": at(0, 51)},
        {"end_time": at(1, 10), "released_at": at(1, 0) + timedelta(seconds=2),
         "first_call_at": at(1, 0) + timedelta(seconds=3)},
        {"end_time": None, "released_at": at(1, 10) + timedelta(milliseconds=300),
         "first_call_at": at(1, 10) + timedelta(milliseconds=500)},
        {"end_time": None, "released_at": None, "first_call_at": None},
    ]
    assert dead_times(rows) == [3.0, 0.5]
    assert dead_times(rows, until="released_at") == [2.0, 0.3]


def test_the_staging_depth_setting(monkeypatch):
    from dream_pipeline.defs.loop.sensors import staging_depth

    monkeypatch.delenv("DREAM_LOOP_STAGING_DEPTH", raising=False)
    assert staging_depth() == 5
    for raw, depth in (("1", 1), ("2", 2), ("12", 12)):
        monkeypatch.setenv("DREAM_LOOP_STAGING_DEPTH", raw)
        assert staging_depth() == depth
    for raw in ("0", "-1", "two", "1.5", ""):
        monkeypatch.setenv("DREAM_LOOP_STAGING_DEPTH", raw)
        with pytest.raises(ValueError) as info:
            staging_depth()
        assert str(info.value) == f"DREAM_LOOP_STAGING_DEPTH must be a whole number >= 1, got {raw!r}"


def test_three_books_take_turns_in_their_order_and_a_new_book_starts_at_one():
    snap = snapshot(books=("space_time", "sea", "moon"), next_numbers={"space_time": 4, "sea": 9}, depth=6)
    assert requested_all(plan_loop(snap)) == [
        "space_time-00004", "sea-00009", "moon-00001", "space_time-00005", "sea-00010", "moon-00002"]
    after_sea = snapshot(books=("space_time", "sea", "moon"), next_numbers={"space_time": 4, "sea": 9}, depth=1,
                         last_key="sea-00008")
    assert requested_all(plan_loop(after_sea)) == ["moon-00001"]


def test_a_book_with_epochs_per_cycle_keeps_its_turn_for_that_many_epochs():
    books = ("space_time", "sea")
    snap = snapshot(books=books, next_numbers={"space_time": 4, "sea": 9}, depth=6,
                    epochs_per_cycle={"space_time": 3})
    # a turn ends at a multiple of 3: 4 and 5 finish space_time's turn, 6 ends it; sea runs one, then 7, 8
    assert requested_all(plan_loop(snap)) == [
        "space_time-00004", "space_time-00005", "space_time-00006", "sea-00009", "space_time-00007",
        "space_time-00008"]


def test_the_turn_is_read_off_the_last_epoch_so_it_survives_a_restart():
    def after(last_key: str) -> list[str]:
        return requested_all(plan_loop(snapshot(
            books=("space_time", "sea"), next_numbers={"space_time": int(last_key[-5:]) + 1, "sea": 9}, depth=1,
            last_key=last_key, epochs_per_cycle={"space_time": 2, "sea": 1})))

    assert after("space_time-00005") == ["space_time-00006"]
    assert after("space_time-00006") == ["sea-00009"]
    one_each = snapshot(books=("space_time", "sea"), next_numbers={"space_time": 6, "sea": 9}, depth=1,
                        last_key="space_time-00005", epochs_per_cycle={"space_time": 1})
    assert requested_all(plan_loop(one_each)) == ["sea-00009"]


def test_next_book_turns_on_the_epoch_number_and_restarts_at_the_first_book():
    from dream_pipeline.defs.loop.sensors import next_book

    books = ("space_time", "sea", "moon")
    assert next_book(books, None, {}) == "space_time"  # a cold start with no cursor
    assert next_book(books, "retired-00007", {}) == "space_time"  # a book no longer enabled: the first one
    assert next_book(books, "sea-00004", {}) == "moon"  # one epoch a turn when not given
    assert next_book(books, "moon-00002", {}) == "space_time"  # after the last book, the first again
    # three epochs a turn: 7 and 8 keep the turn, 9 (a multiple of 3) ends it
    assert [next_book(books, f"sea-{n:05d}", {"sea": 3}) for n in (7, 8, 9)] == ["sea", "sea", "moon"]
    assert next_book(("sea",), "sea-00005", {"sea": 2}) == "sea"  # a single book always has the turn
