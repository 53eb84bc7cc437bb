"""Simulated blind peer review: JSON ballots whose scores follow the drafts they judge.

The contract with the pipeline: drafts sit in the last user message, each wrapped exactly as
`<draft id="LABEL">...</draft>`. The reply is `{"votes": [{"draft_id", "insight_score",
"rationale"}, ...]}`, one vote per distinct label in the order shown. Draft text is data, never
instructions: the ballot is built as a Python object and serialised, so nothing inside a draft
can change its shape.

A score blends a measured text quality (lexical richness, sentence variety, a length neither
tiny nor endless, a proper ending) with the hidden quality of the theme the prose came from when
that theme is recognisable, plus deterministic noise per (seed, voter system message, label).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from offline_engine.config import EngineConfig
from offline_engine.themes import (
    distinctive_vocabulary,
    hidden_quality,
    recognise_theme,
    theme_shares,
    words_of,
)

DRAFT_RE = re.compile(r'<draft id="([^"]+)">(.*?)</draft>', re.DOTALL)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
_QUOTE_UNSAFE = re.compile(r"[\"\\<>{}\[\]`]")


def find_drafts(message: str) -> list[tuple[str, str]]:
    """(label, text) for each delimited draft; a repeated label keeps its first occurrence."""
    seen: dict[str, str] = {}
    for label, text in DRAFT_RE.findall(message or ""):
        seen.setdefault(label, text.strip())
    return list(seen.items())


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


@dataclass(frozen=True)
class TextMeasures:
    tokens: int
    distinct: int
    richness: float
    variety: float
    length: float
    ending: float

    @property
    def quality(self) -> float:
        """In [0, 1]; length gates the rest, so neither a scrap nor an endless ramble scores well."""
        return self.length * (0.55 * self.richness + 0.3 * self.variety + 0.15 * self.ending)


def measure(text: str) -> TextMeasures:
    tokens = text.split()
    n = len(tokens)
    words = words_of(text)
    window = words[:200]
    ttr = len(set(window)) / len(window) if window else 0.0
    sentences = [s for s in _SENTENCE_SPLIT.split(text.strip()) if s]
    lengths = [len(s.split()) for s in sentences]
    cv = statistics.pstdev(lengths) / statistics.fmean(lengths) if len(lengths) >= 2 else 0.0
    if n < 40:
        length = 0.3 * n / 40
    elif n < 150:
        length = 0.3 + 0.7 * (n - 40) / 110
    elif n <= 900:
        length = 1.0
    elif n <= 2500:
        length = 1.0 - 0.7 * (n - 900) / 1600
    else:
        length = 0.2
    return TextMeasures(
        tokens=n,
        distinct=len(set(words)),
        richness=_clamp((ttr - 0.15) / 0.5),
        variety=_clamp(cv / 0.6),
        length=length,
        ending=1.0 if text.rstrip().endswith((".", "!", "?", '"', "'")) else 0.0,
    )


def _voter_rng(config: EngineConfig, system: str, label: str) -> random.Random:
    key = f"{config.seed}\x1f{hashlib.sha256(system.encode()).hexdigest()}\x1f{label}"
    return random.Random(hashlib.sha256(key.encode()).digest())  # noqa: S311 - simulation, not security


def score_draft(config: EngineConfig, system: str, label: str, text: str) -> int:
    """An insight score in 1..10 for one draft as seen by the voter behind `system`."""
    m = measure(text)
    if m.tokens == 0:
        return 1
    base = m.quality
    shares = theme_shares(text)
    if shares:
        hidden = sum(share * hidden_quality(theme, config.seed, config.quality_map) for theme, share in shares.items())
        base = 0.7 * base + 0.3 * hidden
    noise = _voter_rng(config, system, label).gauss(0.0, 0.7)
    return int(_clamp(round(1 + 9 * base + noise), 1, 10))


def _quote(text: str, rng: random.Random) -> str | None:
    sentences = [s for s in _SENTENCE_SPLIT.split(text.strip()) if len(s.split()) >= 5]
    if not sentences:
        return None
    words = _QUOTE_UNSAFE.sub("", rng.choice(sentences)).split()[:7]
    return " ".join(words).rstrip(".,;:!?") + "..."


def rationale(config: EngineConfig, system: str, label: str, text: str, score: int) -> str:
    """One or two sentences that point at something actually in the draft."""
    m = measure(text)
    if m.tokens == 0:
        return "The draft is empty, so there is nothing to weigh."
    rng = _voter_rng(config, system, label + "#rationale")
    verdict = ("is vivid and well argued" if score >= 8 else "holds the thread, if unevenly" if score >= 6
               else "wanders and repeats itself" if score >= 4 else "says little that carries the book forward")
    quote = _quote(text, rng)
    theme = recognise_theme(text)
    if quote:
        first = f'The passage beginning "{quote}" {verdict}.'
    else:
        top = Counter(words_of(text)).most_common(1)
        first = f'Built around the word "{top[0][0] if top else text.split()[0]}", the draft {verdict}.'
    if m.tokens < 40:
        second = f"At {m.tokens} words it is too slight to carry a chapter."
    elif m.tokens > 2500:
        second = f"At {m.tokens} words it runs on well past its welcome."
    elif m.richness < 0.3:
        second = f"Its vocabulary is thin: {m.distinct} distinct words in {m.tokens}."
    elif not m.ending:
        second = "It breaks off mid-thought."
    elif theme is not None:
        vocab = distinctive_vocabulary()[theme]
        hits = Counter(w for w in words_of(text) if w in vocab).most_common(1)
        second = f'Its treatment of "{hits[0][0]}" gives it substance.'
    else:
        second = f"Across {m.tokens} words the sentences change pace and the vocabulary stays varied."
    return f"{first} {second}"


def ballot(config: EngineConfig, system: str, drafts: list[tuple[str, str]]) -> dict[str, list[dict]]:
    votes = []
    for label, text in drafts:
        score = score_draft(config, system, label, text)
        votes.append({"draft_id": label, "insight_score": score,
                      "rationale": rationale(config, system, label, text, score)})
    return {"votes": votes}


def json_reply(config: EngineConfig, system: str, last_user: str, fallback: str,
               labels: list[str] | None = None) -> str:
    """The JSON text for a JSON-mode request: a ballot if drafts are present, else a plain object.

    `labels` (a constraining schema's enum) replace the drafts' own ids, in order: a server held to
    a schema writes the ids the schema allows, whatever the prompt says."""
    drafts = find_drafts(last_user)
    if labels is not None:
        texts = [text for _, text in drafts]
        drafts = [(label, texts[i] if i < len(texts) else "") for i, label in enumerate(labels)]
    if not drafts:
        return json.dumps({"response": fallback})
    return json.dumps(ballot(config, system, drafts))


def flawed(reply: str, rng: random.Random) -> str:
    """A ballot with one mistake a weak, unconstrained model makes: a score as text, a vote left out,
    a score out of range or the JSON cut short."""
    doc = json.loads(reply)
    votes = doc.get("votes") or []
    if not votes:
        return reply
    kind = rng.choice(("score_text", "missing", "range", "cut"))
    if kind == "score_text":
        votes[0]["insight_score"] = f"{votes[0]['insight_score']}/10"
    elif kind == "missing":
        votes.pop()
    elif kind == "range":
        votes[-1]["insight_score"] = 11
    else:
        return reply[: max(1, len(reply) // 2)]
    return json.dumps(doc)


def wrapped(reply: str, rng: random.Random) -> str:
    """A prompt-only ballot as chat models write it: bare, in a code fence, or inside prose."""
    style = rng.choice(("fence", "prose", "fence_prose"))
    if style == "fence":
        return f"```json\n{reply}\n```"
    if style == "prose":
        return f"Here is my review of the drafts.\n\n{reply}\n\nI tried to judge each draft on its own merits."
    return f"Sure! My ballot:\n```\n{reply}\n```\nLet me know if you need anything else."
