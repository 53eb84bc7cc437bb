"""The rolling summary started ahead (from the opening step, once the last ballot is in) is taken only by
the closing step of the same epoch that crowned the same draft; anything else is dropped, and a failure to
start is a warning, never the votes' failure."""

from __future__ import annotations

import uuid
from concurrent.futures import Future

import pytest

from dream_pipeline.epoch import summary_ahead
from dream_pipeline.epoch.summary_ahead import start_summary, take_summary


def _started(key: str, draft_id: uuid.UUID) -> Future:
    future: Future = Future()
    summary_ahead._started.clear()
    summary_ahead._started[key] = (draft_id, future)
    return future


def test_the_closing_step_takes_the_summary_of_the_draft_it_crowned():
    draft = uuid.uuid4()
    future = _started("space_time-00003", draft)
    assert take_summary("space_time-00003", draft) is future
    assert take_summary("space_time-00003", draft) is None  # taken once


def test_a_summary_of_another_draft_or_epoch_is_dropped():
    draft = uuid.uuid4()
    _started("space_time-00004", draft)
    assert take_summary("space_time-00005", draft) is None  # another epoch: not this one's
    assert take_summary("space_time-00004", draft) is not None
    _started("space_time-00006", draft)
    assert take_summary("space_time-00006", uuid.uuid4()) is None  # another winner: dropped
    assert take_summary("space_time-00006", draft) is None  # and not kept for later


class _Broken:
    """A fabric that fails every read: the head start gives up with a warning."""

    def __getattr__(self, name):
        raise ConnectionError("the fabric is down")


def test_a_head_start_that_cannot_decide_is_a_warning(caplog: pytest.LogCaptureFixture):
    from dream_pipeline.domains import load_domain
    from dream_pipeline.epoch.scope import EpochScope
    from resources.fabric import EpochRecord

    epoch = EpochRecord(uuid.uuid4(), "space_time-00007", "space_time", 7, "open", ())
    summary_ahead._started.clear()
    start_summary(_Broken(), None, EpochScope(load_domain("space_time"), epoch, ()))
    assert summary_ahead._started == {}
    assert "space_time-00007: the summary was not started ahead" in caplog.text
