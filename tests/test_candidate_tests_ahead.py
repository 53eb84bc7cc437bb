"""The candidates' sandbox runs started ahead (while the ballots are out) give the ranking exactly what
running them at the ranking would, each run once; a failed or missing head start costs only time."""

from __future__ import annotations

import uuid

import pytest

from dream_pipeline.domains import load_domain
from dream_pipeline.epoch import candidate_tests
from dream_pipeline.epoch.candidate_tests import start_candidate_tests
from dream_pipeline.epoch.scope import EpochScope
from resources.fabric import DraftRow, EpochRecord, VoteRow
from resources.sandbox import SandboxRunner


class CountingRunner:
    """The real sandbox, counting the runs it is asked for (and failing them on demand)."""

    def __init__(self) -> None:
        self.sandbox = SandboxRunner()
        self.runs: list[str] = []
        self.fail = False

    def run(self, code, function, calls):
        if self.fail:
            raise RuntimeError("the sandbox fell over")
        self.runs.append(code)
        return self.sandbox.run(code, function, calls)


@pytest.fixture
def runner(monkeypatch) -> CountingRunner:
    counting = CountingRunner()
    monkeypatch.setattr(candidate_tests, "sandbox_runner", lambda: counting)
    return counting


def _scope(number: int) -> EpochScope:
    epoch = EpochRecord(uuid.uuid4(), f"code_repair-{number:05d}", "code_repair", number, "open", ())
    return EpochScope(load_domain("code_repair"), epoch, ())


def _draft(author: str, text: str) -> DraftRow:
    return DraftRow(uuid.uuid4(), author, text, 10, 10, "stop", False, 0.1)


def _vote(voter: str, target: str, score: int) -> VoteRow:
    return VoteRow(voter, target, uuid.uuid4(), uuid.uuid4(), score, "", "Draft A", 0)


def _candidates(scope: EpochScope) -> tuple[list[DraftRow], list[VoteRow]]:
    task = scope.book.posed(scope.number)
    written = [
        _draft("Fixer", f"Here it is:\n```python\n{task.fix}\n```"),
        _draft("Copier", f"```python\n{task.buggy}\n```"),
        _draft("Talker", "I would rather not write code today."),
    ]
    votes = [_vote("Fixer", "Copier", 7), _vote("Copier", "Fixer", 4), _vote("Talker", "Fixer", 9),
             _vote("Fixer", "Talker", 2), _vote("Copier", "Talker", 3), _vote("Talker", "Copier", 8)]
    return written, votes


def test_runs_started_ahead_are_taken_once_and_decide_as_a_run_at_the_ranking(runner):
    scope = _scope(1)
    written, votes = _candidates(scope)
    now = candidate_tests.test_candidates(scope, written, votes)  # nothing started: run at the ranking
    assert len(runner.runs) == 3  # a reply without a fence is run as it is (and fails)
    runner.runs.clear()

    start_candidate_tests(scope, written)
    ahead = candidate_tests.test_candidates(scope, written, votes)
    assert len(runner.runs) == 3  # run ahead, not again at the ranking
    assert ahead.winner == now.winner == "Fixer"
    assert {a: (s.status, s.passed, s.total, s.fitness) for a, s in ahead.scores.items()} == \
        {a: (s.status, s.passed, s.total, s.fitness) for a, s in now.scores.items()}
    assert ahead.scores["Fixer"].pass_rate == 1.0 and ahead.scores["Copier"].pass_rate < 1.0
    assert ahead.scores["Talker"].pass_rate == 0.0
    assert ahead.calibration == now.calibration  # the peers' means still enter: fitness and calibration


def test_a_failed_head_start_is_run_again_at_the_ranking(runner):
    scope = _scope(2)
    written, votes = _candidates(scope)
    runner.fail = True
    start_candidate_tests(scope, written)
    candidate_tests._AHEAD.submit(lambda: None).result()  # the head start has failed by now
    runner.fail = False
    tested = candidate_tests.test_candidates(scope, written, votes)
    assert len(runner.runs) == 3 and tested.winner == "Fixer"
    assert tested.scores["Fixer"].pass_rate == 1.0


def test_another_epochs_runs_are_not_taken_and_only_the_latest_are_kept(runner):
    first, second = _scope(1), _scope(3)
    written, votes = _candidates(first)
    start_candidate_tests(first, written)
    later, later_votes = _candidates(second)
    start_candidate_tests(second, later)  # the first epoch's runs are dropped
    assert list(candidate_tests._started) == [second.key]
    candidate_tests.test_candidates(first, written, votes)  # nothing kept for it: run again
    candidate_tests.test_candidates(second, later, later_votes)
    assert len(runner.runs) == 3 + 3 + 3  # ahead for each epoch, then the first's again
    assert candidate_tests._started == {}  # taken


def test_the_book_starts_nothing(runner):
    epoch = EpochRecord(uuid.uuid4(), "space_time-00001", "space_time", 1, "open", ())
    scope = EpochScope(load_domain("space_time"), epoch, ())
    written = [_draft("Physicist", "A chapter."), _draft("Poet", "Another.")]
    start_candidate_tests(scope, written)
    assert candidate_tests.test_candidates(scope, written, [_vote("Poet", "Physicist", 6)]) is None
    assert runner.runs == []


@pytest.mark.parametrize("ahead", [True, False], ids=["started ahead", "at the ranking"])
def test_candidates_with_the_same_code_share_one_run(runner, ahead):
    scope = _scope(5)
    written, votes = _candidates(scope)
    task = scope.book.posed(scope.number)
    twin = _draft("Twin", f"My fix, in other words:\n```python\n{task.fix}\n```")  # the Fixer's code
    written.append(twin)
    votes += [_vote("Twin", "Fixer", 5), _vote("Fixer", "Twin", 6)]
    if ahead:
        start_candidate_tests(scope, written)
    tested = candidate_tests.test_candidates(scope, written, votes)
    assert len(runner.runs) == 3  # four candidates, three different codes
    fixer, twin_score = tested.scores["Fixer"], tested.scores["Twin"]
    assert (twin_score.status, twin_score.passed, twin_score.pass_rate) == (fixer.status, fixer.passed, 1.0)
