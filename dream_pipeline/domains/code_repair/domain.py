"""CodeRepair as the loop's domain: `CodeRepairDomain` implements the Domain protocol (spica/domain.py)
and is registered as the instance `code_repair`.

Each epoch poses one task of the shipped set (`task_for`: every task once per cycle through the set, in
an order drawn from the instance name and the cycle, so the choice is the same for every rerun, replay
or re-roll of the epoch); the cast proposes fixes in the burst, reviews them blind with the tournament's
ballots, and the hidden tests, run in the sandbox (`score_candidates`), say which fixes work. The
winner's code enters the "solved tasks" canon under the task's id.

It seats its cast as a book does (`SpicaBook`'s cast, reserve and recruitment), with its own manifest.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from dream_pipeline.domains.code_repair.prompts import (
    REVIEW_NOTE,
    extract_code,
    repair_prompt,
    review_prompt,
    system_prompt,
)
from dream_pipeline.domains.code_repair.rules import fitness, judge_calls, pass_rate
from dream_pipeline.domains.code_repair.tasks import RepairTask, load_tasks
from dream_pipeline.tournament.anonymize import BALLOT_INSTRUCTIONS, Presentation
from dream_pipeline.tournament.deidentify import identity_terms
from dream_pipeline.tournament.token_budget import estimate_tokens
from spica import SpicaAgent, SpicaBook, register_domain

INSTANCE = "code_repair"
# the deck's views of CodeRepair, by name (the deck maps them to pages; "repair_task" and "calibration"
# are CodeRepair's own, the others are the tournament's views every domain shares)
CODE_REPAIR_VIEWS = ("repair_task", "matrix", "calibration", "chopping_block", "ratings", "lineage", "telemetry",
                     "glossary")


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's hidden-test run: how it ended, what it passed, and its fitness (rules.fitness)."""

    code: str
    status: str  # the sandbox's status, or 'no_code' for a reply without any code
    passed: int
    total: int
    pass_rate: float
    fitness: float
    detail: list[dict[str, Any]]


@dataclass(frozen=True)
class RepairContext:
    """What the burst poses: the task, and the figures the opening step reports of every burst's prompt
    (a repair prompt recalls no chapters and trims nothing)."""

    task: RepairTask
    budget: int
    tokens: int
    trimmed: tuple[str, ...] = ()
    related: tuple[int, ...] = ()
    summary_through: int | None = None

    def stats(self) -> dict[str, object]:
        return {"task": self.task.id, "tokens": self.tokens, "budget": self.budget}


def task_for(instance: str, number: int, tasks: Sequence[RepairTask] | None = None) -> RepairTask:
    """The task epoch `number` of `instance` poses: the tasks in an order drawn from (instance, cycle),
    each once per cycle of len(tasks) epochs."""
    if number < 1:
        raise ValueError(f"epoch numbers start at 1, got {number}")
    tasks = tuple(tasks if tasks is not None else load_tasks())
    cycle, index = divmod(number - 1, len(tasks))
    seed = int(hashlib.sha256(f"{instance}:{cycle}".encode()).hexdigest()[:12], 16)
    order = sorted(tasks, key=lambda t: t.id)
    random.Random(seed).shuffle(order)  # noqa: S311 (a reproducible order, not crypto)
    return order[index]


class CodeRepairDomain(SpicaBook):
    """Candidate fixes by a cast of engineers, judged blind by their peers and by hidden tests."""

    family: ClassVar[str] = "code_repair"
    canon_memory: ClassVar[bool] = False  # each epoch poses its own task; solved tasks are not recalled

    @classmethod
    def load(cls, name: str = INSTANCE) -> CodeRepairDomain:
        if name != INSTANCE:
            raise ValueError(f"no CodeRepair instance named {name!r} (there is {INSTANCE!r})")
        text = resources.files("dream_pipeline.domains.code_repair").joinpath("manifest.json").read_text("utf-8")
        return cls(json.loads(text))

    # ---- what an epoch poses -------------------------------------------------------------------

    def posed(self, number: int) -> RepairTask:
        return task_for(self.name, number)

    def burst_context(self, memory: Any, budget: int) -> RepairContext:
        """The epoch's task (`memory` carries the epoch's number; the canon's memory is not read)."""
        task = self.posed(memory.chapter_number)
        return RepairContext(task, budget, estimate_tokens(repair_prompt(task)))

    def burst_messages(self, agent: SpicaAgent, context: RepairContext) -> list[dict[str, str]]:
        return [{"role": "system", "content": system_prompt(agent.manifest)},
                {"role": "user", "content": repair_prompt(context.task)}]

    # ---- review --------------------------------------------------------------------------------

    def review_criteria(self) -> str:
        return REVIEW_NOTE + BALLOT_INSTRUCTIONS

    def review_prompt(self, presentation: Presentation, candidates: Mapping[str, str],
                      shown: Mapping[str, int] | None = None, context: Any = None) -> str:
        """The task, then each candidate's code (extracted from its reply) as a masked draft."""
        if not isinstance(context, RepairTask):
            raise ValueError("a CodeRepair review needs the epoch's task as its context")
        return review_prompt(context, presentation, {a: extract_code(t) for a, t in candidates.items()})

    def review_messages(self, agent: SpicaAgent, prompt: str, repair: str | None = None) -> list[dict[str, str]]:
        system = system_prompt(agent.manifest) + "\nYou are now a blind reviewer of your peers' anonymous fixes."
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        if repair:
            messages.append({"role": "user",
                             "content": f"Your previous reply was rejected ({repair}). Reply again with the JSON only."})
        return messages

    def identity_terms(self, seated: Sequence[Mapping[str, Any]], used_names: Iterable[str]) -> tuple[str, ...]:
        personas = [*self.manifest.get("cast", ()), *self.manifest.get("reserve", ()), *seated]
        return identity_terms([*personas, *sorted(used_names)])

    # ---- the tests -----------------------------------------------------------------------------

    def score_candidates(self, context: RepairTask, candidates: Mapping[str, str],
                         peer_scores: Mapping[str, float], run: Callable[[str, str, Sequence[str]], Any]
                         ) -> dict[str, CandidateScore]:
        """Each candidate's code run against the task's hidden tests by `run(code, function, calls)` (the
        sandbox: `resources.sandbox.SandboxRunner.run`), and its fitness with its mean peer score. A run
        that did not end well (a limit broken, malformed output) or a reply without code scores 0."""
        tests = context.hidden
        out = {}
        for author, reply in sorted(candidates.items()):
            code = extract_code(reply)
            if not code.strip():
                status, outcomes, detail = "no_code", [False] * len(tests), []
            else:
                result = run(code, context.function, [t.args for t in tests])
                status = result.status
                outcomes = judge_calls(tests, result.ok, result.calls)
                if result.ok:
                    detail = [{"args": t.args, "passed": ok, "got": c.value if c.ok else f"raises:{c.error}"}
                              for t, ok, c in zip(tests, outcomes, result.calls, strict=True)]
                else:
                    detail = [{"status": status, "detail": result.detail[:300]}]
            rate = pass_rate(outcomes)
            out[author] = CandidateScore(code, status, sum(outcomes), len(tests), rate,
                                         fitness(rate, peer_scores.get(author)), detail)
        return out

    # ---- canon ---------------------------------------------------------------------------------

    def canon_entry(self, winner_text: str, number: int) -> tuple[str, str]:
        """A solved task: titled by the task's id, the text is the winning fix's code."""
        return self.posed(number).id, extract_code(winner_text)

    def canon_markdown(self, number: int, title: str, author: str, text: str, world: int | None = None) -> str:
        heading = f"## Task {number}: {title}" + (f" (world {world})" if world is not None else "")
        return f"{heading}\n\n*fixed by the {author}*\n\n```python\n{text.rstrip()}\n```"

    def deck_views(self) -> tuple[str, ...]:
        return CODE_REPAIR_VIEWS


register_domain(INSTANCE)(CodeRepairDomain)

SpicaCodeRepair = CodeRepairDomain  # the name the benchmark and the engine tests knew it by
