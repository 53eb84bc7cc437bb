"""The CodeRepair task set: one TOML file per task under `tasks/`, parsed into `RepairTask`s.

A task is data, not code we run: the buggy function and the reference fix are source text, and every
test is a pair of Python literals (the argument tuple, the expected value), or `raises:Name` for a
call that must raise that exception. Parsing is pure (`parse_task` takes text); `load_tasks` only
reads the files shipped with the package. Nothing here executes a task's code: that happens in the
sandbox (`resources.sandbox`), and the comparison with the expected values in `rules`.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

RAISES_PREFIX = "raises:"
MIN_HIDDEN_TESTS = 3
MAX_HIDDEN_TESTS = 99  # the fitness rule's tie-break stays below one hidden test up to this many
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_KEYS = {"id", "kind", "function", "description", "buggy", "fix", "visible", "hidden"}


class TaskError(ValueError):
    """A task file that does not describe a usable task; the message names the file and the field."""


@dataclass(frozen=True)
class TestCase:
    """One call: `args` is a literal tuple, `expected` a literal or `raises:ExceptionName`."""

    __test__ = False  # not a pytest class

    args: str
    expected: str

    @property
    def raises(self) -> str | None:
        return self.expected[len(RAISES_PREFIX):] if self.expected.startswith(RAISES_PREFIX) else None

    def expected_value(self) -> Any:
        return ast.literal_eval(self.expected)


@dataclass(frozen=True)
class RepairTask:
    id: str
    kind: str
    function: str
    description: str
    buggy: str
    fix: str
    visible: tuple[TestCase, ...]
    hidden: tuple[TestCase, ...]


def _tests(raw: Any, field: str, source: str) -> tuple[TestCase, ...]:
    if not isinstance(raw, list):
        raise TaskError(f"{source}: {field} must be a list of [args, expected] pairs")
    out = []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise TaskError(f"{source}: {field}[{i}] must be a pair of strings")
        case = TestCase(*pair)
        try:
            args = ast.literal_eval(case.args)
        except (ValueError, SyntaxError) as exc:
            raise TaskError(f"{source}: {field}[{i}] args is not a Python literal: {exc}") from None
        if not isinstance(args, tuple):
            raise TaskError(f"{source}: {field}[{i}] args must be a tuple literal such as (1,)")
        if case.raises is not None:
            if not case.raises.isidentifier():
                raise TaskError(f"{source}: {field}[{i}] names no exception: {case.expected!r}")
        else:
            try:
                case.expected_value()
            except (ValueError, SyntaxError) as exc:
                raise TaskError(f"{source}: {field}[{i}] expected is not a Python literal: {exc}") from None
        out.append(case)
    return tuple(out)


def _defines(code: str, function: str, field: str, source: str) -> str:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise TaskError(f"{source}: {field} does not parse: {exc}") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body):
        raise TaskError(f"{source}: {field} does not define {function}()")
    return code.strip("\n") + "\n"


def parse_task(text: str, source: str = "<task>") -> RepairTask:
    """One task from its TOML text; a clear `TaskError` for anything missing or malformed."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{source}: not valid TOML: {exc}") from None
    missing, unknown = _KEYS - set(raw), set(raw) - _KEYS
    if missing or unknown:
        raise TaskError(f"{source}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    for key in ("id", "kind", "function", "description", "buggy", "fix"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise TaskError(f"{source}: {key} must be a non-empty string")
    if not _ID_RE.match(raw["id"]):
        raise TaskError(f"{source}: id {raw['id']!r} must be lower_snake_case")
    function = raw["function"]
    if not function.isidentifier():
        raise TaskError(f"{source}: function {function!r} is not an identifier")
    hidden = _tests(raw["hidden"], "hidden", source)
    if not (MIN_HIDDEN_TESTS <= len(hidden) <= MAX_HIDDEN_TESTS):
        raise TaskError(f"{source}: needs {MIN_HIDDEN_TESTS}..{MAX_HIDDEN_TESTS} hidden tests, has {len(hidden)}")
    return RepairTask(
        id=raw["id"], kind=raw["kind"].strip(), function=function, description=raw["description"].strip(),
        buggy=_defines(raw["buggy"], function, "buggy", source), fix=_defines(raw["fix"], function, "fix", source),
        visible=_tests(raw["visible"], "visible", source), hidden=hidden,
    )


@cache
def load_tasks() -> tuple[RepairTask, ...]:
    """Every shipped task, sorted by id; a file whose name is not its id is an error."""
    folder = resources.files("dream_pipeline.domains.code_repair").joinpath("tasks")
    tasks = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        task = parse_task(entry.read_text(encoding="utf-8"), entry.name)
        if f"{task.id}.toml" != entry.name:
            raise TaskError(f"{entry.name}: its id is {task.id!r}")
        tasks.append(task)
    return tuple(tasks)


def task_by_id(task_id: str) -> RepairTask:
    for task in load_tasks():
        if task.id == task_id:
            return task
    raise KeyError(f"no CodeRepair task {task_id!r}")
