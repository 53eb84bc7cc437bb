"""Every shipped CodeRepair task is sound: run in the real sandbox, its reference fix passes every hidden
test and its buggy version fails at least one (so the task measures something)."""

from __future__ import annotations

from collections import Counter

import pytest

from dream_pipeline.domains.code_repair.rules import judge_calls, pass_rate
from dream_pipeline.domains.code_repair.tasks import TaskError, load_tasks, parse_task, task_by_id
from resources.sandbox import SandboxRunner

TASKS = load_tasks()


def _rate(runner: SandboxRunner, code: str, task, tests) -> float:
    run = runner.run(code, task.function, [t.args for t in tests])
    return pass_rate(judge_calls(tests, run.ok, run.calls))


def test_the_task_set_is_large_and_varied():
    assert len(TASKS) >= 30
    kinds = Counter(t.kind for t in TASKS)
    assert len(kinds) >= 10
    for kind in ("off-by-one", "wrong condition", "missing case", "wrong data structure", "wrong operator",
                 "mutable default", "integer division", "boundary", "string handling", "sorting stability"):
        assert kinds[kind] >= 1, kind
    assert len({t.id for t in TASKS}) == len(TASKS)
    assert all(t.visible and len(t.hidden) >= 3 and t.description for t in TASKS)


@pytest.mark.parametrize("task", TASKS, ids=[t.id for t in TASKS])
def test_reference_fix_passes_and_buggy_version_fails(task):
    runner = SandboxRunner()
    assert _rate(runner, task.fix, task, task.hidden) == 1.0
    assert _rate(runner, task.fix, task, task.visible) == 1.0
    assert _rate(runner, task.buggy, task, task.hidden) < 1.0


def test_task_by_id_and_unknown_id():
    assert task_by_id("sum_to_n").function == "sum_to_n"
    with pytest.raises(KeyError):
        task_by_id("no_such_task")


GOOD = '''
id = "tiny"
kind = "off-by-one"
function = "f"
description = "Return x plus one."
buggy = """
def f(x):
    return x
"""
fix = """
def f(x):
    return x + 1
"""
visible = [["(1,)", "2"]]
hidden = [["(1,)", "2"], ["(2,)", "3"], ["(-1,)", "raises:ValueError"]]
'''


def test_parse_task_reads_a_well_formed_task():
    task = parse_task(GOOD, "tiny.toml")
    assert task.id == "tiny"
    assert task.hidden[2].raises == "ValueError"
    assert task.hidden[1].expected_value() == 3
    assert task.fix == "def f(x):\n    return x + 1\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('hidden = [["(1,)", "2"], ["(2,)", "3"], ["(-1,)", "raises:ValueError"]]', 'hidden = [["(1,)", "2"]]'),
         "needs 3..99 hidden tests"),
        (('["(2,)", "3"]', '["2", "3"]'), "args must be a tuple"),
        (('["(2,)", "3"]', '["(2,)", "three"]'), "expected is not a Python literal"),
        (('function = "f"', 'function = "g"'), "buggy does not define g()"),
        (('id = "tiny"', 'id = "Tiny Task"'), "lower_snake_case"),
        (('kind = "off-by-one"\n', ''), "missing ['kind']"),
        (('    return x + 1', '    return x +'), "fix does not parse"),
    ],
)
def test_parse_task_rejects_malformed_tasks(change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(TaskError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse_task(GOOD.replace(old, new), "tiny.toml")
