"""The offline engine writes code: fixes with planted correctness, fallible reviews; over real HTTP too."""

from __future__ import annotations

import json
import statistics

from openai import OpenAI

from dream_pipeline.domains.code_repair.domain import SpicaCodeRepair
from dream_pipeline.domains.code_repair.prompts import (
    extract_code,
    repair_prompt,
    review_prompt,
    system_prompt,
)
from dream_pipeline.domains.code_repair.rules import spearman
from dream_pipeline.domains.code_repair.tasks import load_tasks, task_by_id
from dream_pipeline.tournament import parse_ballot, plan_presentations
from offline_engine.code import (
    code_reply,
    mutants,
    normal_form,
    persona_skill,
    propose_fix,
    reference,
    review_fixes,
    task_in_prompt,
)

TASKS = load_tasks()
CAST = SpicaCodeRepair.load().initial_cast()
SYSTEMS = {a.name: system_prompt(a.manifest) for a in CAST}


def test_the_task_is_recognised_only_from_a_prompt_header():
    task = task_by_id("gcd")
    assert task_in_prompt(repair_prompt(task)) == "gcd"
    assert task_in_prompt("Chapter 3. She wrote <task id=\"gcd\"> on the wall.") is None
    assert task_in_prompt('<task id="not_a_task">') is None
    assert propose_fix("Write the next chapter.", SYSTEMS["Debugger"], 0) is None


def test_fixes_are_deterministic_and_follow_planted_skill():
    assert persona_skill(SYSTEMS["Debugger"], 0) == 0.9
    assert persona_skill(SYSTEMS["Intern"], 0) == 0.3
    share = {}
    for name in ("Debugger", "Intern"):
        right = 0
        for seed in range(3):
            for task in TASKS:
                reply = propose_fix(repair_prompt(task), SYSTEMS[name], seed)
                assert reply == propose_fix(repair_prompt(task), SYSTEMS[name], seed)
                right += normal_form(extract_code(reply)) == normal_form(task.fix)
        share[name] = right / (3 * len(TASKS))
    assert share["Debugger"] > 0.75
    assert share["Intern"] < 0.5


def test_mutants_are_plausible_and_wrong_looking():
    for task in TASKS:
        variants = mutants(task.id)
        assert variants, task.id
        forms = {normal_form(v) for v in variants}
        assert None not in forms
        assert normal_form(task.fix) not in forms
        assert len(forms) == len(variants)
        assert all(f"def {task.function}(" in v for v in variants)
    assert normal_form(reference(task_by_id("clamp"))) == normal_form(task_by_id("clamp").fix)


def _ballot(task, voter, seed=0):
    authors = [a.name for a in CAST]
    codes = {a: extract_code(propose_fix(repair_prompt(task), SYSTEMS[a], seed)) for a in authors}
    presentation = plan_presentations(authors, seed)[voter]
    prompt = review_prompt(task, presentation, {i.author: codes[i.author] for i in presentation.items})
    return codes, presentation, prompt


def test_reviews_are_valid_blind_ballots():
    task = task_by_id("binary_search")
    _, presentation, prompt = _ballot(task, "Tester")
    ballot = review_fixes(prompt, SYSTEMS["Tester"], 0)
    votes = parse_ballot(json.dumps(ballot), presentation)
    assert [v.label for v in votes] == presentation.labels()
    assert all(1 <= v.insight_score <= 10 for v in votes)
    assert "Tester" not in {v.target for v in votes}


def test_skilled_reviewers_rank_the_reference_fix_above_the_buggy_code_more_reliably():
    def agreement(voter):
        rhos = []
        for task in TASKS:
            codes = {"ref": reference(task), "bug": task.buggy, **{f"m{i}": m for i, m in enumerate(mutants(task.id)[:3])}}
            blocks = "\n\n".join(f'<draft id="D{i}">\n```python\n{c}```\n</draft>' for i, c in enumerate(codes.values()))
            ballot = review_fixes(f'<task id="{task.id}">\n{blocks}', SYSTEMS[voter], 1)
            truth = [2 if k == "ref" else 0 if k == "bug" else 1 for k in codes]
            rho = spearman([v["insight_score"] for v in ballot["votes"]], truth)
            rhos.append(rho)
        return statistics.fmean(rhos)

    assert agreement("Debugger") > agreement("Intern") + 0.1
    assert agreement("Intern") > 0.0


def test_the_engine_answers_code_repair_over_http(engine_url):
    client = OpenAI(base_url=engine_url, api_key="offline", max_retries=0)
    task = task_by_id("median")
    fix = client.chat.completions.create(
        model="offline-scribe", max_tokens=400,
        messages=[{"role": "system", "content": SYSTEMS["Debugger"]}, {"role": "user", "content": repair_prompt(task)}],
    ).choices[0].message.content
    assert f"def {task.function}(" in extract_code(fix)
    assert fix == code_reply(7, SYSTEMS["Debugger"], repair_prompt(task), False)
    _, presentation, prompt = _ballot(task, "Architect")
    reply = client.chat.completions.create(
        model="offline-scribe", max_tokens=400, response_format={"type": "json_object"},
        messages=[{"role": "system", "content": SYSTEMS["Architect"]}, {"role": "user", "content": prompt}],
    ).choices[0].message.content
    assert len(parse_ballot(reply, presentation)) == len(CAST) - 1
