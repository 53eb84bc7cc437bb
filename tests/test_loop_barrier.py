"""The barrier between epochs and the claim on an epoch, on the real database."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from resources.epoch_barrier import BarrierTimeout, EpochBarrier, PredecessorLost
from resources.fabric import ChapterRow, DraftRow
from spica import SpicaBook


def _commit(fabric, key: str, number: int, *, notify: bool = True) -> None:
    """Drive an epoch to committed through the fabric, as the epoch's last step does."""
    epoch = fabric.open_epoch("space_time", key, number)
    agents = fabric.agents(epoch.active_agent_ids)
    ids = fabric.write_drafts(epoch.epoch_id, [
        DraftRow(a.instance_id, a.name, f"draft of {a.name}", 1, 1, "stop", False, 0.1) for a in agents
    ])
    fabric.commit_chapter(epoch.epoch_id, "space_time", ChapterRow(number, ids[0], agents[0].instance_id, "T", "x",
                                                                   1.0, 0.0))
    if notify:
        fabric.reap(fabric.epoch(key), None, None)
    else:  # a commit whose notification is lost
        with psycopg.connect(fabric.url(), autocommit=True) as conn:
            conn.execute("UPDATE simulation_epochs SET status = 'committed' WHERE epoch_key = %s", (key,))


@pytest.fixture
def book(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    return "space_time"


def test_the_first_epoch_goes_straight_through(fabric, book):
    """No predecessor: the barrier returns before its first wait for a notification (a poll of 30 s),
    even though a run of this book's next epoch is live; only another book's open epoch would hold it."""
    asked = []
    barrier = EpochBarrier(fabric, epoch_has_live_run=lambda key: asked.append(key) or True, poll_s=30)
    waited = barrier.wait_for_turn(book, "space_time-00001", None, timeout_s=60)
    assert 0.0 <= waited < 30.0  # had it waited once, it would have waited the whole poll
    assert asked == []  # nothing to wait for: no run was even looked up
    # the same first epoch while another book has an epoch open with a live run: it waits, then gives up
    other = fabric.open_epoch(book, "space_time-00001", 1)
    held = EpochBarrier(fabric, epoch_has_live_run=lambda key: key == other.epoch_key, poll_s=0.1)
    with pytest.raises(BarrierTimeout, match=r"space_time-00001 \(another book\) to commit"):
        held.wait_for_turn("sea", "sea-00001", None, timeout_s=0.3)
    free = EpochBarrier(fabric, epoch_has_live_run=lambda key: False, poll_s=30)
    assert 0.0 <= free.wait_for_turn("sea", "sea-00001", None, timeout_s=60) < 30.0


def test_a_lost_predecessor_fails_fast(fabric, book):
    barrier = EpochBarrier(fabric, epoch_has_live_run=lambda key: False)
    with pytest.raises(PredecessorLost, match="space_time-00001 is not started"):
        barrier.wait_for_turn(book, "space_time-00002", "space_time-00001", timeout_s=60)
    fabric.open_epoch(book, "space_time-00001", 1)
    with pytest.raises(PredecessorLost, match="space_time-00001 is running"):
        barrier.wait_for_turn(book, "space_time-00002", "space_time-00001", timeout_s=60)


@pytest.mark.parametrize("notify", [True, False], ids=["notified", "notification-lost"])
def test_a_staged_epoch_waits_until_its_predecessor_commits(fabric, book, notify):
    fabric.open_epoch(book, "space_time-00001", 1)
    committed = threading.Event()

    def commit_later():
        time.sleep(0.5)
        _commit(fabric, "space_time-00001", 1, notify=notify)
        committed.set()

    barrier = EpochBarrier(fabric, epoch_has_live_run=lambda key: not committed.is_set(), poll_s=0.2)
    worker = threading.Thread(target=commit_later)
    worker.start()
    barrier.wait_for_turn(book, "space_time-00002", "space_time-00001", timeout_s=30)
    # it did not go before the commit (read from the fabric: with pooled connections the barrier can see
    # the commit before the committing thread has set its event)
    assert fabric.epoch("space_time-00001").status == "committed"
    worker.join()
    assert committed.is_set()
    assert fabric.open_epoch(book, "space_time-00002", 2).epoch_number == 2


def test_the_barrier_gives_up_after_its_timeout(fabric, book):
    fabric.open_epoch(book, "space_time-00001", 1)
    barrier = EpochBarrier(fabric, epoch_has_live_run=lambda key: True, poll_s=0.1)
    with pytest.raises(BarrierTimeout, match="space_time-00001 to commit"):
        barrier.wait_for_turn(book, "space_time-00002", "space_time-00001", timeout_s=0.3)


def test_one_live_run_owns_an_epoch(fabric, book):
    epoch = fabric.open_epoch(book, "space_time-00001", 1)
    barrier = EpochBarrier(fabric, epoch_has_live_run=lambda key: False)
    live = {"run-a"}
    assert barrier.claim(epoch.epoch_id, "run-a", live.__contains__) is None
    assert barrier.claim(epoch.epoch_id, "run-b", live.__contains__) == "run-a"
    assert barrier.claim(epoch.epoch_id, "run-a", live.__contains__) is None  # a rerun of the owner
    live.clear()  # run-a died: its claim is stale
    assert barrier.claim(epoch.epoch_id, "run-b", live.__contains__) is None
    fabric.mark_epoch_failed("space_time-00001", "stale run", run_id="run-a")
    assert fabric.epoch("space_time-00001").status == "running"  # only the owner's failure counts
    fabric.mark_epoch_failed("space_time-00001", "engine down", run_id="run-b")
    assert fabric.epoch("space_time-00001").status == "failed"


def _drive_to_commit(fabric, epoch) -> None:
    agents = fabric.agents(epoch.active_agent_ids)
    ids = fabric.write_drafts(epoch.epoch_id, [
        DraftRow(a.instance_id, a.name, f"draft of {a.name}", 1, 1, "stop", False, 0.1) for a in agents
    ])
    fabric.commit_chapter(epoch.epoch_id, epoch.book, ChapterRow(epoch.epoch_number, ids[0], agents[0].instance_id,
                                                                 "T", "x", 1.0, 0.0))
    fabric.reap(fabric.epoch(epoch.epoch_key), None, None)


def test_two_books_staged_together_open_one_epoch_at_a_time(fabric):
    """Two books' first epochs released by the same instant (a cold start, one NOTIFY waking both):
    exactly one opens; the other waits for its commit, then opens."""
    for name in ("space_time", "far_shore"):
        fabric.ensure_book(SpicaBook.load(name))
    for number in range(1, 4):
        keys = {book: f"{book}-{number:05d}" for book in ("space_time", "far_shore")}
        start = threading.Barrier(2)
        overlaps, errors = [], []

        def run(book, keys=keys, start=start, overlaps=overlaps, errors=errors, number=number):
            key = keys[book]
            # both runs are live for the whole round, as staged runs are
            live = set(keys.values()) - {key}
            barrier = EpochBarrier(fabric, epoch_has_live_run=live.__contains__, poll_s=0.05)
            previous = f"{book}-{number - 1:05d}" if number > 1 else None
            try:
                start.wait()
                epoch, _ = barrier.open_in_turn(book, key, number, previous, timeout_s=30)
                time.sleep(0.3)  # the tournament; nothing else may open meanwhile
                with fabric.connection() as conn:
                    open_now = conn.execute("SELECT count(*) AS n FROM simulation_epochs"
                                            " WHERE status IN ('running', 'collapsed')").fetchone()["n"]
                overlaps.append(open_now)
                _drive_to_commit(fabric, epoch)
            except Exception as exc:  # reported below, with the thread's name
                errors.append(f"{book}: {exc!r}")

        threads = [threading.Thread(target=run, args=(book,)) for book in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert overlaps == [1, 1], f"round {number}: open epochs seen during each tournament: {overlaps}"
        assert all(fabric.epoch(k).status == "committed" for k in keys.values())
