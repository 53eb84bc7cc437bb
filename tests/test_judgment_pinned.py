"""Pinned values of the judgment rules (elimination, reliability, de-identification, diversity, verbosity).

Each expected value is worked out by hand (exact fractions, or a small computation in a comment),
not recomputed with the rules' own code or constants, so that a changed operator or constant in a
rule turns a test red (``python -m bench.mutation --module judgment_rules``).
"""

from __future__ import annotations
