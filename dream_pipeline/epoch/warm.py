"""What a staged epoch run does before it waits at the barrier, so the epoch does not pay for it after the
release (issue 17: dead time and overhead).

Every epoch runs in a fresh run process, and libraries load some of their modules only on first use. On
the clock, after the release, that was about 40 ms on 2 cores: the openai client's resources and the
async transport's backend at the first draft request (`LLMEngine.warm_up` loads them), pandas' reshaping
and Arrow conversion at the epoch's first vote matrix, which a CodeRepair epoch builds between its last
ballot and its ranking. Nothing here touches the fabric or the engine.
"""

from __future__ import annotations

import uuid

from dream_pipeline.epoch.vote_matrix import vote_matrix_markdown
from dream_pipeline.records import VoteRow
from resources.llm import LLMEngine


def warm_run_process(llm: LLMEngine) -> None:
    """Build the next session's client and load what the epoch's first requests and tables would."""
    llm.warm_up()
    a, b = uuid.uuid4(), uuid.uuid4()
    vote_matrix_markdown([VoteRow("A", "B", a, b, 5, "", "Draft A", 0), VoteRow("B", "A", b, a, 6, "", "Draft A", 0)])
