"""What engine text may become before it is stored: the one policy for drafts, ballots and summaries.

NUL and lone surrogates (which PostgreSQL and UTF-8 cannot hold) become U+FFFD, one for one; every
other character is stored as written. The policy is defined with the rows it protects, in
`dream_pipeline.records` (pure), so that the fabric applies the same one without importing the
tournament; the pipeline takes it from here.
"""

from __future__ import annotations

from dream_pipeline.records import REPLACEMENT, storable_json, storable_text, unstorable_count

__all__ = ["REPLACEMENT", "storable_text", "storable_json", "unstorable_count"]
