"""CodeRepair epochs in the fabric, for the deck's tests: two committed epochs and a third being played.

Written through the fabric's public writers (the domain, its cast, epochs, drafts, the review design,
ballots, ratings, the canon and the commit) plus plain parameterized INSERTs for the three CodeRepair
tables of sql/014_code_repair.sql, whose writers belong to the pipeline. Every figure is a literal, so
the tests can pin what the deck shows: the same task, fixes, test results, votes and calibration.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources

from psycopg.types.json import Jsonb

from dream_pipeline.domains.code_repair.tasks import task_by_id
from dream_pipeline.epoch.keys import epoch_key
from dream_pipeline.records import AssignmentRow, ChapterRow, DraftRow, RatingRow, VoteRow
from resources.fabric import StateFabric
from spica import SpicaAgent
from spica.base import Lineage, Spica
from tests.fabric_helpers import alive_agents, write_votes

DOMAIN = "code_repair"
# model output the deck must show as text: in a fix's code (and so its diff) and in a reply without code
HOSTILE_LINE = "    # <script>window.__pwned = 1</script> **not bold** <b>x</b> [link](javascript:alert(1))"
HOSTILE_REPLY = "# Not a heading\n<script>window.__pwned = 1</script>\n<b>not bold</b> and no code at all"


class CodeRepairFixture(Spica):
    """The shipped CodeRepair manifest and its cast, stored under the kind the deck knows it by (built here
    from the manifest, so the fixture does not depend on how the pipeline's domain class loads)."""

    kind = "code_repair"

    @classmethod
    def shipped(cls) -> CodeRepairFixture:
        folder = resources.files("dream_pipeline.domains.code_repair")
        return cls(json.loads(folder.joinpath("manifest.json").read_text("utf-8")))

    def initial_cast(self) -> list[SpicaAgent]:
        return [SpicaAgent(dict(p), lineage=Lineage(origin="cast")) for p in self.manifest["cast"]]


@dataclass(frozen=True)
class Candidate:
    agent: str
    code: str  # the code taken from the reply ('' when none could be)
    status: str
    passed: int
    total: int
    fitness: float


def _reply(code: str) -> str:
    return f"Here is my fix.\n\n```python\n{code.strip()}\n```\n" if code else HOSTILE_REPLY


def epoch_plan() -> list[dict]:
    """What each epoch holds: its task, its candidates (tests), each voter's calibration, and who wins."""
    add_item, average, clamp = task_by_id("add_item"), task_by_id("average"), task_by_id("clamp")
    return [
        {"task": add_item, "winner": "Debugger", "candidates": [
            Candidate("Debugger", add_item.fix, "ok", 4, 4, 1.008),
            Candidate("Tester", add_item.fix, "ok", 4, 4, 1.006),
            Candidate("Architect", add_item.buggy, "ok", 1, 4, 0.254),  # the buggy function, unchanged
            Candidate("Hacker", add_item.fix.rstrip("\n") + "\n" + HOSTILE_LINE + "\n", "ok", 4, 4, 1.002),
            Candidate("Intern", "", "no_code", 0, 4, 0.0),
         ], "calibration": {"Debugger": 0.9, "Tester": 0.6, "Architect": 0.4, "Hacker": 0.2, "Intern": -0.5}},
        {"task": average, "winner": "Tester", "candidates": [
            Candidate("Tester", average.fix, "ok", 5, 5, 1.009),
            Candidate("Debugger", average.fix, "ok", 5, 5, 1.007),
            Candidate("Architect", average.fix, "ok", 5, 5, 1.004),
            Candidate("Hacker", average.buggy, "ok", 1, 5, 0.201),
            Candidate("Intern", "def average(xs):\n    while True:\n        pass\n", "timeout", 0, 5, 0.0),
         ], "calibration": {"Debugger": 0.7, "Tester": 0.8, "Architect": None, "Hacker": 0.0, "Intern": None}},
        {"task": clamp, "winner": None, "candidates": [  # being played: tested in part, no ballot yet
            Candidate("Debugger", clamp.fix, "ok", 6, 6, 1.0),
            Candidate("Tester", clamp.fix, "ok", 6, 6, 1.0),
            Candidate("Architect", clamp.buggy, "ok", 3, 6, 0.5),
            Candidate("Hacker", clamp.fix, "untested", 0, 6, 0.0),  # its sandbox run has not been recorded
         ], "calibration": {}},
    ]


def write_code_repair_epochs(fabric: StateFabric, epochs: int = 3) -> dict:
    """The CodeRepair domain with epochs 1–2 committed and epoch 3 drafted and partly tested (the first
    `epochs` of them); returns the epochs' ids and the plan."""
    fabric.ensure_book(CodeRepairFixture.shipped())
    agents = {a.name: a for a in alive_agents(fabric, DOMAIN)}
    plan, ids = epoch_plan()[:epochs], {}
    for number, epoch in enumerate(plan, start=1):
        record = fabric.open_epoch(DOMAIN, epoch_key(DOMAIN, number), number)
        ids[number] = record.epoch_id
        task = epoch["task"]
        with fabric.connection() as conn:
            conn.execute(
                "INSERT INTO repair_tasks (epoch_id, task_id, kind, function, description, buggy, visible_tests)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (record.epoch_id, task.id, task.kind, task.function, task.description, task.buggy,
                 Jsonb([[t.args, t.expected] for t in task.visible])),
            )
        drafted = [agents[c.agent] for c in epoch["candidates"]]
        draft_ids = fabric.write_drafts(record.epoch_id, [
            DraftRow(a.instance_id, a.name, _reply(c.code), 120, 60, "stop", False, 0.5)
            for a, c in zip(drafted, epoch["candidates"], strict=True)
        ])
        with fabric.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO candidate_tests (draft_id, epoch_id, code, status, passed, total, pass_rate, fitness)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(d, record.epoch_id, c.code, c.status, c.passed, c.total, c.passed / c.total, c.fitness)
                 for d, c in zip(draft_ids, epoch["candidates"], strict=True) if c.status != "untested"],
            )
        if epoch["winner"] is None:
            continue
        _vote(fabric, record.epoch_id, drafted, epoch["candidates"])
        by_fitness = sorted(zip(drafted, epoch["candidates"], strict=True), key=lambda p: -p[1].fitness)
        fabric.write_ratings(record.epoch_id, [
            RatingRow(a.instance_id, a.name, 1500.0, 1500.0 + 10 * (2 - rank), c.fitness, 0.0, rank + 1)
            for rank, (a, c) in enumerate(by_fitness)
        ], agents[epoch["winner"]].instance_id, None)
        with fabric.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO voter_calibration (epoch_id, voter_agent, spearman, n) VALUES (%s, %s, %s, %s)",
                [(record.epoch_id, voter, rho, 4) for voter, rho in epoch["calibration"].items()],
            )
        won = next(i for i, c in zip(draft_ids, epoch["candidates"], strict=True) if c.agent == epoch["winner"])
        winner = next(c for c in epoch["candidates"] if c.agent == epoch["winner"])
        fabric.commit_chapter(record.epoch_id, DOMAIN, ChapterRow(
            number, won, agents[epoch["winner"]].instance_id, task.id, winner.code, winner.fitness, 0.002))
        fabric.reap(fabric.epoch(record.epoch_key), None, None)
    return {"ids": ids, "plan": plan}


def _vote(fabric: StateFabric, epoch_id: uuid.UUID, drafted: list, candidates: list[Candidate]) -> None:
    """Every voter scores every other fix: 2 + 7 × its pass rate, one point lower from the Intern."""
    votes, design = [], []
    for voter in drafted:
        targets = [(a, c) for a, c in zip(drafted, candidates, strict=True) if a.name != voter.name]
        for position, (target, c) in enumerate(targets):
            label = f"Anonymous_{position + 1}"
            score = round(2 + 7 * c.passed / c.total) - (1 if voter.name == "Intern" else 0)
            design.append(AssignmentRow(voter.name, target.name, voter.instance_id, target.instance_id, label,
                                        position))
            votes.append(VoteRow(voter.name, target.name, voter.instance_id, target.instance_id, max(1, score),
                                 f"{label} passes the examples I traced", label, position))
    write_votes(fabric, epoch_id, votes, (), design)
