"""How a CodeRepair epoch's code reads in the deck: a candidate fix as a unified diff against the buggy
function, and the task's visible tests as calls. Pure (no Streamlit, no I/O), so it is tested alone.

Both return plain text that the views show only through `st.code`, which displays it verbatim: a fix is
model output, and nothing in it is ever rendered as Markdown or HTML.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

RAISES_PREFIX = "raises:"  # a test whose call must raise (the task set's own notation)


def fix_diff(buggy: str, candidate: str, context: int = 3) -> str:
    """`candidate` as a unified diff against `buggy` ('' when they are the same, line for line)."""
    lines = difflib.unified_diff(buggy.strip("\n").splitlines(), candidate.strip("\n").splitlines(),
                                 fromfile="buggy", tofile="candidate", n=context, lineterm="")
    return "\n".join(lines)


def changed_lines(diff: str) -> int:
    """How many lines `fix_diff`'s diff removes or adds (its two header lines excluded, whatever a changed
    line itself starts with)."""
    return sum(1 for line in diff.splitlines()[2:] if line[:1] in ("+", "-"))


def shown_call(function: str, test: Any) -> str:
    """One visible test as a line of Python: `f(args) == expected`, or `f(args) raises Name`. A test
    recorded as an [args, expected] pair or an {"args", "expected"} object; anything else as its JSON."""
    if isinstance(test, dict) and {"args", "expected"} <= test.keys():
        test = [test["args"], test["expected"]]
    if isinstance(test, Sequence) and not isinstance(test, str) and len(test) == 2 \
            and all(isinstance(x, str) for x in test):
        args, expected = test
        call = function + (args if args.startswith("(") else f"({args})")
        if expected.startswith(RAISES_PREFIX):
            return f"{call} raises {expected[len(RAISES_PREFIX):]}"
        return f"{call} == {expected}"
    return json.dumps(test, ensure_ascii=False)

