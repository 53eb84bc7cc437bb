"""The sandbox holds: every hostile candidate is stopped and scores 0, with no trace outside, and the
calling process goes on; a correct candidate scores 1.0. Real processes, real limits, no mocks."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from bench.hostile_code import CASES, TESTS, bait, run_case
from dream_pipeline.domains.code_repair.rules import judge_calls, pass_rate
from resources.sandbox import SandboxLimits, SandboxRunner, _parse_results

CORRECT = "def f(x):\n    return x + 1\n"
# short wall clock: the cases that need it (fork bomb, stubborn loop) end sooner
LIMITS = SandboxLimits(wall_s=5.0, cpu_s=2, call_s=0.5)


def _score(run) -> float:
    return pass_rate(judge_calls(TESTS, run.ok, run.calls))


@pytest.fixture(scope="module")
def runner() -> SandboxRunner:
    return SandboxRunner(LIMITS)


@pytest.fixture(scope="module")
def world():
    with bait() as w:
        yield w


def _namespaces_work() -> bool:
    tool = shutil.which("unshare")
    return os.geteuid() == 0 and tool is not None and subprocess.run(
        [tool, "-n", "-m", "true"], capture_output=True, check=False).returncode == 0


def test_a_correct_candidate_scores_one(runner):
    run = runner.run(CORRECT, "f", [t.args for t in TESTS])
    assert run.status == "ok"
    assert [c.value for c in run.calls] == ["2", "3", "4"]
    assert _score(run) == 1.0


def test_a_partly_wrong_candidate_scores_its_share(runner):
    run = runner.run("def f(x):\n    return 3 if x == 2 else 0\n", "f", [t.args for t in TESTS])
    assert _score(run) == pytest.approx(1 / 3)


def test_prints_do_not_spoil_the_result_and_exceptions_are_named(runner):
    code = "def f(x):\n    print('chatty', x)\n    if x == 3:\n        raise KeyError(x)\n    return x + 1\n"
    run = runner.run(code, "f", [t.args for t in TESTS])
    assert run.status == "ok"
    assert [c.ok for c in run.calls] == [True, True, False]
    assert run.calls[2].error == "KeyError"


def test_the_same_code_gives_the_same_result(runner):
    code = "def f(words):\n    return list(set(words))\n"  # string hashing decides the order
    values = {runner.run(code, "f", ["(['pear', 'fig', 'kiwi', 'plum', 'lime'],)"]).calls[0].value for _ in range(3)}
    assert len(values) == 1


def test_a_candidate_that_does_not_define_the_function_scores_zero(runner):
    for code in ("def g(x):\n    return x + 1\n", "def f(x) return x", ""):
        run = runner.run(code, "f", [t.args for t in TESTS])
        assert run.status == "ok"
        assert _score(run) == 0.0
        assert run.calls[0].error.startswith("definition:")


def test_the_sandbox_runs_unprivileged_with_no_network_when_the_os_allows(runner):
    caps = runner.capabilities
    assert caps.python is not None
    if os.geteuid() == 0:
        assert caps.privileges_dropped
    if _namespaces_work():
        assert caps.network_cut and caps.filesystem_jail and caps.pid_namespace
    run = runner.run("import os\ndef f(x):\n    return (os.getuid(), sorted(os.environ), os.getcwd().startswith('/'))\n",
                     "f", ["(0,)"])
    uid, env, absolute = eval(run.calls[0].value)  # noqa: S307 - a tuple literal produced by our own probe
    assert env == []
    assert absolute
    if os.geteuid() == 0:
        assert uid == 65534


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_candidates_are_stopped_and_score_zero(runner, world, case):
    result = run_case(runner, case, world)
    assert not result.escaped, f"{case.name} escaped: {result.evidence}"
    assert result.pass_rate == 0.0
    # the caller goes on: the next candidate runs as if nothing happened
    assert _score(runner.run(CORRECT, "f", [t.args for t in TESTS])) == 1.0


@pytest.mark.parametrize(
    ("name", "status", "error", "wall_s"),
    [("big_file", "ok", "OSError", 20),  # Python ignores SIGXFSZ: the write past the limit fails with EFBIG
     ("memory_hog", "ok", "MemoryError", 20), ("huge_allocation", "ok", "MemoryError", 20),
     ("infinite_loop", "ok", "CallTimeout", 20),  # the per-call alarm counts CPU time: load does not trip it
     ("sleep_forever", "timeout", None, 2),  # so a sleeper meets the wall clock
     ("network_connect", "ok", "OSError", 20), ("unix_socket", "ok", "FileNotFoundError", 20),
     ("read_hidden_tests", "ok", "FileNotFoundError", 20), ("garbage_output", "malformed", None, 20),
     ("output_flood", "malformed", None, 20),
     ("stubborn_loop", "timeout|killed", None, 3)],  # CPU limit or wall clock first, as the machine's load has it
)
def test_hostile_candidates_end_the_way_their_limit_says(world, name, status, error, wall_s):
    case = next(c for c in CASES if c.name == name)
    # a wall clock long enough that, on a loaded machine too, the limit under test is met first
    limits = SandboxLimits(wall_s=wall_s, cpu_s=4, call_s=0.5)
    run = SandboxRunner(limits).run(world.fill(case), "f", [t.args for t in TESTS])
    assert run.status in status.split("|")
    if error is None:
        assert run.calls == ()
    else:
        assert [c.error for c in run.calls] == [error] * 3


def test_the_process_count_limit_binds(runner):
    code = """
import os, time
def f(x):
    made = 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        made += 1
    return made
"""
    run = SandboxRunner(SandboxLimits(processes=8, wall_s=5.0)).run(code, "f", ["(0,)"])
    assert run.ok
    made = int(run.calls[0].value)
    if runner.capabilities.privileges_dropped:  # RLIMIT_NPROC binds a non-root uid only
        assert 0 < made < 8


@pytest.mark.parametrize(
    "text",
    ["", "\n", "not json\n", '{"results": []}\n', '{"results": [{"ok": true, "value": "2"}]}',
     '{"results": [{"ok": true, "value": "2"}]}\n{"results": [{"ok": true, "value": "2"}]}\n',
     '{"results": [{"ok": "yes", "value": "2"}]}\n', '{"results": [{"ok": true, "value": 2}]}\n',
     '{"results": [{"ok": true, "value": "2"}], "extra": 1}\n', '[1]\n'],
)
def test_malformed_output_is_rejected(text):
    assert _parse_results(text, 1) is None


def test_well_formed_output_is_read():
    parsed = _parse_results('{"results": [{"ok": true, "value": "2"}, {"ok": false, "error": "KeyError"}]}\n', 2)
    assert parsed is not None
    assert [(c.ok, c.value, c.error) for c in parsed] == [(True, "2", None), (False, None, "KeyError")]


def test_limits_reject_nonsense():
    with pytest.raises(ValueError):
        SandboxLimits(cpu_s=0)
    with pytest.raises(ValueError):
        SandboxLimits(wall_s=0)
