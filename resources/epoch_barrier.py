"""The barrier between epochs: a staged run waits here until its predecessor has committed.

Epoch N's Reaper commits and NOTIFYs `dream_epochs` in one transaction; a run staged for N+1 waits
on LISTEN, and re-checks the committed state after every notification or poll, so a missed
notification can never deadlock it. It fails fast when the predecessor can no longer commit (no
live run owns it), and never runs beside an open epoch of another book. Claiming an epoch records
the run that owns it, so two runs can never work on the same epoch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from resources.fabric import EPOCH_CHANNEL, EpochBusy, EpochRecord, StateFabric


class PredecessorLost(RuntimeError):
    """The epoch before this one is not committed and no live run can commit it."""


class BarrierTimeout(TimeoutError):
    """The predecessor did not commit within the barrier's timeout."""


@dataclass
class EpochBarrier:
    fabric: StateFabric
    epoch_has_live_run: Callable[[str], bool]  # is a queued/running run (other than ours) on this epoch key?
    poll_s: float = 1.0

    def wait_for_turn(self, book: str, epoch_key: str, previous_key: str | None, timeout_s: float) -> float:
        """Block until this epoch may run (`previous_key`: the book's epoch before it, None for the
        first); returns the seconds waited."""
        started = time.monotonic()
        with psycopg.connect(self.fabric.url(), autocommit=True) as listener:
            listener.execute(f"LISTEN {EPOCH_CHANNEL}")
            while True:
                blocker = self._blocker(book, epoch_key, previous_key)
                if blocker is None:
                    return time.monotonic() - started
                if time.monotonic() - started > timeout_s:
                    raise BarrierTimeout(f"{epoch_key} waited {timeout_s:.0f} s for {blocker}")
                for _ in listener.notifies(timeout=self.poll_s, stop_after=1):
                    pass

    def open_in_turn(self, book: str, epoch_key: str, number: int, previous_key: str | None, timeout_s: float,
                     gate: Callable[[], bool] = lambda: True) -> tuple[EpochRecord | None, float]:
        """Wait for this epoch's turn, then open it, atomically with respect to every other book: the
        opening re-checks under one lock that no other book's epoch is open, and waits again if one
        opened meanwhile. `gate()` False after the wait (PHASE) returns no epoch. Returns the epoch and
        the seconds waited."""
        started = time.monotonic()
        while True:
            self.wait_for_turn(book, epoch_key, previous_key, max(0.0, timeout_s - (time.monotonic() - started)))
            if not gate():
                return None, time.monotonic() - started
            try:
                epoch = self.fabric.open_epoch(book, epoch_key, number, busy=self.epoch_has_live_run)
            except EpochBusy:
                continue  # another book's epoch won the lock: wait for its commit
            return epoch, time.monotonic() - started

    def _blocker(self, book: str, epoch_key: str, previous_key: str | None) -> str | None:
        """What this epoch waits for, or None when it may go. Raises when the wait would be forever."""
        previous, others = self.fabric.barrier_state(book, epoch_key, previous_key)
        if previous_key is not None and previous != "committed":
            if not self.epoch_has_live_run(previous_key) and not self._committed(previous_key):
                raise PredecessorLost(f"{previous_key} is {previous or 'not started'} and no live run can commit it")
            return f"{previous_key} to commit"
        for other in others:
            if self.epoch_has_live_run(other):
                return f"{other} (another book) to commit"
        return None

    def _committed(self, epoch_key: str) -> bool:
        with self.fabric.connection() as conn:
            row = conn.execute("SELECT status FROM simulation_epochs WHERE epoch_key = %s", (epoch_key,)).fetchone()
        return row is not None and row["status"] == "committed"

    def claim(self, epoch_id: uuid.UUID, run_id: str, run_is_live: Callable[[str], bool]) -> str | None:
        """Make `run_id` the owner of the epoch; returns the live owner instead if another run holds it."""
        with self.fabric.connection() as conn:
            row = conn.execute(
                "SELECT run_id FROM simulation_epochs WHERE epoch_id = %s FOR UPDATE", (epoch_id,)
            ).fetchone()
            owner = row["run_id"]
            if owner and owner != run_id and run_is_live(owner):
                return owner
            conn.execute(
                "UPDATE simulation_epochs SET run_id = %s, released_at = now() WHERE epoch_id = %s",
                (run_id, epoch_id),
            )
            return None

