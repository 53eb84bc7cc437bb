"""A CodeRepair epoch through Dagster against the real fabric, the offline engine over HTTP and the real
sandbox: the task is recorded, every candidate tested, the fittest wins, a hostile candidate scores 0."""

from __future__ import annotations

import dagster as dg
import pytest

from dream_pipeline.cli.status import domain_lines
from dream_pipeline.defs.epoch.assets import rankings_and_chapter, roster_drafts_and_votes
from dream_pipeline.defs.epoch.checks import one_chapter_per_epoch
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.domains import load_domain
from dream_pipeline.domains.code_repair.domain import task_for
from dream_pipeline.domains.code_repair.tasks import load_tasks
from tests.conftest import assert_checks_hold
from tests.fabric_helpers import alive_agents

KEY = epoch_key("code_repair", 1)


def test_the_registry_serves_code_repair_and_its_deck_views():
    domain = load_domain("code_repair")
    assert domain.family == "code_repair" and domain.canon_memory is False
    assert "repair_task" in domain.deck_views() and "calibration" in domain.deck_views()
    assert domain.cast_size == 5 and len(domain.reserve()) == 3


def test_each_task_is_posed_once_per_cycle_in_a_fixed_order():
    n = len(load_tasks())
    first = [task_for("code_repair", e).id for e in range(1, n + 1)]
    assert sorted(first) == sorted(t.id for t in load_tasks())  # every task once in the first cycle
    assert first == [task_for("code_repair", e).id for e in range(1, n + 1)]  # the same on every call
    second = [task_for("code_repair", e).id for e in range(n + 1, 2 * n + 1)]
    assert sorted(second) == sorted(first) and second != first  # the next cycle, in another order


def test_a_code_repair_epoch_tests_every_candidate_and_commits_the_fittest(run_epoch, fabric):
    result = run_epoch(1, book="code_repair")
    assert result.success
    epoch = fabric.epoch(KEY)
    assert epoch.status == "committed"
    task = fabric.repair_task(epoch.epoch_id)
    assert task["task_id"] == task_for("code_repair", 1).id and task["buggy"].startswith("def ")

    written = fabric.drafts(epoch.epoch_id)
    tests = fabric.candidate_tests(epoch.epoch_id)
    assert len(written) == 5 and {t["agent_name"] for t in tests} == {d.agent_name for d in written}
    total = len(task_for("code_repair", 1).hidden)
    for t in tests:
        assert t["status"] == "ok" and t["total"] == total
        assert t["pass_rate"] == t["passed"] / total
        assert t["pass_rate"] <= t["fitness"] <= t["pass_rate"] + 0.01
    best = max(tests, key=lambda t: (t["fitness"], -ord(t["agent_name"][0])))
    winner = next(d for d in written if d.agent_id == epoch.winner_agent_id)
    assert winner.agent_name == best["agent_name"]

    solved = fabric.chapter_for_epoch(epoch.epoch_id)
    assert solved.title == task["task_id"] and solved.text == best["code"]
    calibration = fabric.voter_calibrations(epoch.epoch_id)
    assert {c["voter_agent"] for c in calibration} == {v.voter_agent for v in fabric.votes(epoch.epoch_id)}
    assert all(c["spearman"] is None or -1 <= c["spearman"] <= 1 for c in calibration)
    # the Reaper drew from CodeRepair's reserve, with lineage
    newcomer = next(a for a in alive_agents(fabric, "code_repair") if a.lineage.origin == "reserve")
    assert newcomer.name in {p["name"] for p in load_domain("code_repair").reserve()}
    # the margin of a solved task is the winner's fitness lead over the runner-up
    rivals = [t["fitness"] for t in tests if t["agent_name"] != best["agent_name"]]
    assert abs(solved.margin - (best["fitness"] - max(rivals))) < 1e-12

    # `dream status` shows both domains, CodeRepair with its winners' pass rate
    lines = domain_lines(fabric)
    assert lines[0].startswith("domain : space_time (book)") and "0 committed" in lines[0]
    assert lines[1].startswith("domain : code_repair (code_repair)") and "1 committed, latest 1" in lines[1]
    assert f"winners pass {best['pass_rate']:.0%} of hidden tests" in lines[1]


def test_dream_run_picks_experiments_by_domain_or_book():
    from argparse import Namespace

    from dream_pipeline.cli.run import _experiment_names

    assert _experiment_names(Namespace(book=None, domain=None)) == ("space_time", "code_repair")
    assert _experiment_names(Namespace(book=None, domain="code_repair")) == ("code_repair",)
    assert _experiment_names(Namespace(book="far_shore", domain=None)) == ("far_shore",)
    with pytest.raises(SystemExit, match="no enabled experiment of domain 'nope'"):
        _experiment_names(Namespace(book=None, domain="nope"))


def test_a_hostile_candidate_is_recorded_scores_zero_and_the_epoch_commits(instance, fabric, llm):
    instance.add_dynamic_partitions("epochs", [KEY])
    resources = {"fabric": fabric, "llm": llm}
    assert dg.materialize([roster_drafts_and_votes], instance=instance, partition_key=KEY,
                          resources=resources).success
    epoch = fabric.epoch(KEY)
    hostile = sorted(fabric.drafts(epoch.epoch_id), key=lambda d: d.agent_name)[0]
    # loops for ever when its module loads, before any call: the run's CPU limit has to stop it
    loop = "```python\nwhile True:\n    pass\n\ndef " + task_for("code_repair", 1).function + "(*a):\n    return 0\n```"
    with fabric.connection() as conn:  # the candidate as a hostile engine would have written it
        conn.execute("UPDATE drafts SET text = %s WHERE draft_id = %s", (loop, hostile.draft_id))
    result = dg.materialize([rankings_and_chapter, one_chapter_per_epoch], instance=instance, partition_key=KEY, resources=resources)
    assert_checks_hold(result)
    assert result.success and fabric.epoch(KEY).status == "committed"
    runs = {t["agent_name"]: t for t in fabric.candidate_tests(epoch.epoch_id)}
    assert runs[hostile.agent_name]["status"] in ("timeout", "killed")  # never 'ok'
    assert runs[hostile.agent_name]["code"].startswith("while True:")
    assert runs[hostile.agent_name]["passed"] == 0 and runs[hostile.agent_name]["pass_rate"] == 0.0
    assert fabric.epoch(KEY).winner_agent_id != hostile.agent_id
