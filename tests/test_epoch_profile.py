"""bench/epoch.py's splits of an epoch's time, from literal timestamps: the dead time before it in its parts, and
the gaps between its engine phases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.epoch import dead_time_parts, phase_gaps

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_dead_time_is_split_at_the_release():
    # commit at 0; released 0.05 s later; the opening step (waiting since -30) sends its first request at
    # 0.31; two round trips of 2 ms each in between, and 0.06 s of CPU from the last sample before the
    # release to the last one before the first call
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": at(0.31)}
    steps = [{"step": "roster_drafts_and_votes", "start": at(-30.0), "end": at(4.0)},
             {"step": "peer_votes", "start": at(4.01), "end": at(5.0)}]
    trace = [(at(0.02).timestamp(), 0.002, "query", 0.98),  # before the release: not a round trip of it
             (at(0.10).timestamp(), 0.002, "query", 1.00), (at(0.20).timestamp(), 0.002, "query", 1.04),
             (at(1.0).timestamp(), 0.002, "query", 1.30)]  # the last one after the first call: not counted
    parts = dead_time_parts(at(0.0), row, steps, trace)
    assert {k: round(v, 6) for k, v in parts.items() if k != "epoch"} == {
        "dead_s": 0.31, "to_release_s": 0.05, "release_to_first_call_s": 0.26,
        "round_trips": 2, "round_trip_s": 0.004, "cpu_s": 0.06,
    }


def test_a_run_without_the_opening_step_has_no_parts():
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": at(0.31)}
    assert dead_time_parts(at(0.0), row, [{"step": "peer_votes", "start": at(1.0), "end": at(2.0)}], []) is None


def test_an_epoch_without_an_engine_call_has_no_parts():
    row = {"epoch_key": "space_time-00002", "released_at": at(0.05), "first_call_at": None}
    assert dead_time_parts(at(0.0), row, [], []) is None


def call(purpose: str, start: float, latency: float) -> dict:
    return {"purpose": purpose, "started_at": at(start), "latency_s": latency}


def test_the_gaps_between_engine_phases_add_up_to_the_wall_less_the_phases():
    # released at 0; drafts 0.1–2.0 (the second starts late), their embedding 2.2–2.5, ballots 2.7–3.5, the
    # summary starts 0.1 s before the last ballot answers (the winner was known early) and ends at 4.0; commit 4.3
    calls = [call("draft", 0.1, 1.9), call("draft", 0.15, 1.5), call("draft_embedding", 2.2, 0.3),
             call("ballot", 2.7, 0.8), call("ballot", 2.8, 0.5), call("summary", 3.4, 0.6)]
    gaps = phase_gaps(calls, at(0.0), at(4.3))
    assert {k: round(v, 6) for k, v in gaps.items()} == {
        "release→draft_s": 0.1, "draft→draft_embedding_s": 0.2, "draft_embedding→ballot_s": 0.2,
        "ballot→summary_s": -0.1, "summary→commit_s": 0.3,
    }


def test_a_domain_without_a_summary_goes_from_its_ballots_to_the_commit():
    calls = [call("draft", 0.1, 1.0), call("draft_embedding", 1.2, 0.3), call("ballot", 1.6, 0.4)]
    assert list(phase_gaps(calls, at(0.0), at(2.5))) == [
        "release→draft_s", "draft→draft_embedding_s", "draft_embedding→ballot_s", "ballot→commit_s"]
    assert round(phase_gaps(calls, at(0.0), at(2.5))["ballot→commit_s"], 6) == 0.5
