"""The offline engine writes code too: candidate fixes for CodeRepair prompts, and reviews of them.

A CodeRepair prompt names its task as `<task id="...">`. The simulated engineer behind a system
message fixes it with a planted probability, its *skill* (by persona keyword, else derived from the
seed): then it answers the task's reference fix; otherwise a plausible wrong variant, a *mutant* (one
operator, comparison, constant or boolean changed in the reference fix, or the buggy code returned
as it was). Everything is deterministic per (seed, system message, task).

The simulated reviewer cannot run code (nothing here executes a candidate: that is the sandbox's
job). It judges what it reads, fallibly, and the better engineer judges better: it recognises the
reference fix as right with probability 0.5 + 0.5 * skill (else it looks uncertain), is fooled into
taking a mutant for right with probability 0.5 * (1 - skill) (else uncertain), always sees the buggy
code returned unchanged as wrong; then adds Gaussian noise whose spread shrinks with skill. So the jury
is informative but fallible, and the hidden tests have something real to calibrate it against.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import random
import re
from functools import cache

from dream_pipeline.domains.code_repair.tasks import RepairTask, task_by_id
from offline_engine.reviewer import find_drafts

TASK_RE = re.compile(r'<task id="([a-z][a-z0-9_]{1,63})">')
_FENCE_RE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

SKILLS: dict[str, float] = {
    "debugger": 0.9,
    "auditor": 0.85,
    "tester": 0.8,
    "compiler engineer": 0.75,
    "architect": 0.65,
    "data scientist": 0.55,
    "hacker": 0.45,
    "intern": 0.3,
}
"""Planted skill per persona keyword: the chance of answering the reference fix (first match wins)."""

LOOKS_RIGHT, LOOKS_UNCERTAIN, LOOKS_WRONG = 1.0, 0.45, 0.1
MAX_MUTANTS = 12


def task_in_prompt(text: str) -> str | None:
    """The task id of a CodeRepair prompt (which opens with its task header), or None for any other
    prompt; a header quoted later in a book's text does not count."""
    match = TASK_RE.match((text or "").lstrip())
    if match is None:
        return None
    try:
        task_by_id(match.group(1))
    except KeyError:
        return None
    return match.group(1)


def _rng(seed: int, *parts: str) -> random.Random:
    key = "\x1f".join([str(seed), *(hashlib.sha256(p.encode()).hexdigest() for p in parts)])
    return random.Random(hashlib.sha256(key.encode()).digest())  # noqa: S311 - simulation, not security


def persona_skill(system: str, seed: int) -> float:
    """The planted skill of the engineer behind `system`: by the earliest persona keyword in it, else
    a stable value in [0.3, 0.85] derived from the seed and the system message."""
    lowered = (system or "").lower()
    hits = [(lowered.find(k), k) for k in SKILLS if k in lowered]
    if hits:
        return SKILLS[min(hits)[1]]
    return 0.3 + 0.55 * _rng(seed, "skill", system or "").random()


class _Mutator(ast.NodeTransformer):
    """Applies the `target`-th possible single-site mutation (counting in walk order)."""

    SWAPS: dict[type, type] = {
        ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Div: ast.FloorDiv,
        ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Mult: ast.Add, ast.And: ast.Or, ast.Or: ast.And,
        ast.In: ast.NotIn, ast.NotIn: ast.In,
    }

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen = 0

    def _hit(self) -> bool:
        self.seen += 1
        return self.seen - 1 == self.target

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            if type(op) in self.SWAPS and self._hit():
                node.ops[i] = self.SWAPS[type(op)]()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if type(node.op) in self.SWAPS and self._hit():
            node.op = self.SWAPS[type(node.op)]()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        if self._hit():
            node.op = self.SWAPS[type(node.op)]()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._hit():
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if type(node.value) is int:
            if self._hit():
                return ast.copy_location(ast.Constant(node.value + 1), node)
            if self._hit():
                return ast.copy_location(ast.Constant(node.value - 1), node)
        return node


def normal_form(code: str) -> str | None:
    """The syntax tree of `code` as text (formatting and comments do not count); None if it does not parse."""
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


@cache
def mutants(task_id: str) -> tuple[str, ...]:
    """Plausible wrong variants of the task's fix: single-site mutations of the reference fix (up to
    MAX_MUTANTS, in a fixed order) and the buggy code itself; none equal to the fix's tree."""
    task = task_by_id(task_id)
    tree = ast.parse(task.fix)
    fix_form = ast.dump(tree)
    out: list[str] = []
    seen = {fix_form}
    target = 0
    while len(out) < MAX_MUTANTS:
        mutator = _Mutator(target)
        variant = ast.fix_missing_locations(mutator.visit(copy.deepcopy(tree)))
        if mutator.seen <= target:
            break
        target += 1
        form = ast.dump(variant)
        if form not in seen:
            seen.add(form)
            out.append(ast.unparse(variant) + "\n")
    buggy = ast.unparse(ast.parse(task.buggy)) + "\n"
    if normal_form(buggy) not in seen:
        out.append(buggy)
    return tuple(out)


def reference(task: RepairTask) -> str:
    return ast.unparse(ast.parse(task.fix)) + "\n"


def propose_fix(prompt: str, system: str, seed: int) -> str | None:
    """The reply to a CodeRepair prompt (None when `prompt` is not one): a sentence and one fenced block
    holding either the reference fix (with probability = the persona's skill) or one of its mutants."""
    task_id = task_in_prompt(prompt)
    if task_id is None:
        return None
    task = task_by_id(task_id)
    rng = _rng(seed, "fix", system or "", task_id)
    if rng.random() < persona_skill(system, seed):
        code = reference(task)
    else:
        code = rng.choice(mutants(task_id))
    return f"The bug is in `{task.function}`; here is the corrected function.\n\n```python\n{code}```\n"


def _code_of(draft: str) -> str:
    match = _FENCE_RE.search(draft)
    return match.group(1) if match else draft


def perceived_quality(task: RepairTask, code: str, skill: float, rng: random.Random) -> float:
    """How correct a candidate looks to a reviewer of `skill` who reads it (before noise)."""
    form = normal_form(code)
    if form is None or form == normal_form(task.buggy):
        return LOOKS_WRONG
    if form == normal_form(task.fix):
        return LOOKS_RIGHT if rng.random() < 0.5 + 0.5 * skill else LOOKS_UNCERTAIN
    return LOOKS_RIGHT if rng.random() < 0.5 * (1.0 - skill) else LOOKS_UNCERTAIN


def review_fixes(prompt: str, system: str, seed: int) -> dict[str, list[dict]] | None:
    """A ballot for a CodeRepair review prompt (None when `prompt` is not one): one vote per
    `<draft id>` in order, insight_score 1..10 = 1 + 9 * perceived quality + noise (sd 0.5 + 1.5 *
    (1 - skill)), with a one-sentence rationale. The draws depend on the code, not on its mask label,
    so the same reviewer judges the same code alike however it is presented."""
    task_id = task_in_prompt(prompt)
    if task_id is None:
        return None
    task = task_by_id(task_id)
    skill = persona_skill(system, seed)
    sd = 0.5 + 1.5 * (1.0 - skill)
    votes = []
    for label, text in find_drafts(prompt):
        code = _code_of(text)
        rng = _rng(seed, "review", system or "", task_id, code)
        looks = perceived_quality(task, code, skill, rng)
        noise = rng.gauss(0.0, sd)
        score = int(min(10, max(1, round(1 + 9 * looks + noise))))
        verdict = ("reads like a complete fix" if score >= 8 else "may fix it, but I cannot vouch for the edge cases"
                   if score >= 5 else "does not address the bug")
        votes.append({"draft_id": label, "insight_score": score,
                      "rationale": f"This change to {task.function} {verdict}."})
    return {"votes": votes}


def code_reply(config_seed: int, system: str, user: str, json_mode: bool, request_seed: int | None = None) -> str | None:
    """The engine's answer to a CodeRepair request (a ballot in JSON mode, else a fix), or None when the
    request is not one. A request `seed` gives another answer, as for prose."""
    if task_in_prompt(user) is None:
        return None
    seed = config_seed if request_seed is None else int.from_bytes(
        hashlib.sha256(f"{config_seed}:{request_seed}".encode()).digest()[:8], "big")
    if json_mode:
        return json.dumps(review_fixes(user, system, seed))
    return propose_fix(user, system, seed)
