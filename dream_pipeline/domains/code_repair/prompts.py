"""What a CodeRepair agent is asked, and what is taken from its answer.

A repair prompt carries the task id as `<task id="...">` (how an engine, or a reader of the
`llm_calls` ledger, tells which task it was), the intended behaviour, the buggy code and the visible
examples; never the hidden tests. A review prompt is the tournament's own blind ballot
(`render_ballot_prompt`: masked labels, shuffled order, no self-review) with each candidate shown as
code, under the same task header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dream_pipeline.domains.code_repair.tasks import RepairTask
from dream_pipeline.tournament.anonymize import Presentation, render_ballot_prompt

_FENCE_RE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
MAX_CODE_CHARS = 20_000
REVIEW_NOTE = "Each draft below is a proposed fix of this function; score how likely it is correct.\n\n"


def system_prompt(persona: Mapping[str, object]) -> str:
    """Who the agent is, for its fixes and its reviews alike."""
    obsessions = ", ".join(str(o) for o in persona.get("obsessions", ()) or ())
    lines = [
        f"You are the {persona['name']}, one engineer in a code-repair tournament.",
        f"Voice: {persona['voice']}." if persona.get("voice") else "",
        f"You keep returning to: {obsessions}." if obsessions else "",
    ]
    return "\n".join(line for line in lines if line)


def task_header(task: RepairTask) -> str:
    return f'<task id="{task.id}">'


def repair_prompt(task: RepairTask) -> str:
    examples = "\n".join(f"    {task.function}{t.args} -> {t.expected}" for t in task.visible)
    return (
        f"{task_header(task)}\n"
        f"The Python function `{task.function}` below has a bug.\n"
        f"Intended behaviour: {task.description}\n\n"
        f"```python\n{task.buggy}```\n\n"
        f"Examples (arguments -> result):\n{examples}\n\n"
        "Answer with the whole corrected function in one ```python block, standard library only.\n"
        "</task>\n"
    )


def review_prompt(task: RepairTask, presentation: Presentation, code_by_author: Mapping[str, str]) -> str:
    """One voter's ballot: the task, then the other candidates as masked drafts of code."""
    shown = {author: f"```python\n{code}```" for author, code in code_by_author.items()}
    return (
        f"{task_header(task)}\nIntended behaviour of `{task.function}`: {task.description}\n\n"
        f"```python\n{task.buggy}```\n</task>\n\n"
        + REVIEW_NOTE + render_ballot_prompt(presentation, shown)
    )


def extract_code(reply: str) -> str:
    """The candidate's code: the first fenced block, else the whole reply; cut at MAX_CODE_CHARS.
    Whether it parses or defines the function is the sandbox's verdict, not ours."""
    match = _FENCE_RE.search(reply or "")
    code = match.group(1) if match else (reply or "")
    return code[:MAX_CODE_CHARS]
