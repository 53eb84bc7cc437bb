"""Configuration of the offline engine: one frozen value that fully determines its behaviour.

A run of the engine is reproducible from its `EngineConfig` alone, so the config is what the
launcher records, compares and passes to the subprocess (as CLI flags; the API key through the
environment so it never shows up in a process listing).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from offline_engine.profiles import PROFILE_NAMES

FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "timeout", "empty", "malformed_json")

ENV_PREFIX = "DREAM_ENGINE_"


def _clean_qualities(value: Any) -> tuple[tuple[str, float], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    out: dict[str, float] = {}
    for key, q in items:
        q = float(q)
        if not (0.0 <= q <= 1.0) or math.isnan(q):
            raise ValueError(f"quality for {key!r} must be within [0, 1], got {q}")
        out[str(key).strip().lower()] = q
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes the engine's answers, latency and faults.

    `qualities` maps a persona keyword (e.g. "physicist") to a hidden quality in [0, 1] that
    simulated reviewers partly reward; a dict is accepted and stored as sorted pairs so the
    config stays hashable. Personas without an entry get a quality derived from the seed.
    `stall_s` is how long the "timeout" fault stalls before answering. `json_mode=False` simulates a
    server without structured output: a request with a JSON `response_format` gets HTTP 400.
    `profile` names the real server whose traits the engine takes on (`offline_engine/profiles.py`).
    """

    seed: int = 0
    model: str = "offline-scribe"
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    embedding_dim: int = 256
    long_draft_rate: float = 0.1
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    api_key: str | None = None
    qualities: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    stall_s: float = 30.0
    json_mode: bool = True
    profile: str = "openai"  # which real server to behave like (offline_engine/profiles.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qualities", _clean_qualities(self.qualities))
        object.__setattr__(self, "fault_kinds", tuple(str(k) for k in self.fault_kinds))
        for name in ("ttft_s", "tokens_per_s", "stall_s", "long_draft_rate", "fault_rate"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("ttft_s", "tokens_per_s", "stall_s"):
            v = getattr(self, name)
            if not (v >= 0.0) or math.isinf(v):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("long_draft_rate", "fault_rate"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be within [0, 1], got {v!r}")
        if not (1 <= self.embedding_dim <= 65536):
            raise ValueError(f"embedding_dim must be within [1, 65536], got {self.embedding_dim!r}")
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
        if self.fault_rate > 0 and not self.fault_kinds:
            raise ValueError("fault_rate > 0 needs at least one fault kind")
        if not isinstance(self.json_mode, bool):
            raise ValueError(f"json_mode must be a bool, got {self.json_mode!r}")
        if not self.model:
            raise ValueError("model must be a non-empty string")
        if self.profile not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILE_NAMES)}")

    @property
    def quality_map(self) -> dict[str, float]:
        return dict(self.qualities)

    def fingerprint(self) -> str:
        """A short digest of the whole config (API key included, but only hashed)."""
        blob = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def public_dict(self) -> dict[str, Any]:
        """The config as JSON-able data, with the API key replaced by whether one is set."""
        d = asdict(self)
        d["api_key"] = self.api_key is not None
        d["fault_kinds"] = list(self.fault_kinds)
        d["qualities"] = dict(self.qualities)
        return d

    def cli_args(self) -> list[str]:
        """Flags for `python -m offline_engine` that reproduce this config (except the API key)."""
        args = [
            "--seed", str(self.seed),
            "--model", self.model,
            "--ttft-s", repr(self.ttft_s),
            "--tokens-per-s", repr(self.tokens_per_s),
            "--embedding-dim", str(self.embedding_dim),
            "--long-draft-rate", repr(self.long_draft_rate),
            "--fault-rate", repr(self.fault_rate),
            "--fault-kinds", ",".join(self.fault_kinds),
            "--stall-s", repr(self.stall_s),
        ]
        for key, q in self.qualities:
            args += ["--quality", f"{key}={q!r}"]
        if not self.json_mode:
            args.append("--no-json-mode")
        if self.profile != "openai":
            args += ["--profile", self.profile]
        return args

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> EngineConfig:
        """Read `DREAM_ENGINE_*` variables; unset ones keep their defaults.

        Recognised: SEED, TTFT_S, TOKENS_PER_S, FAULT_RATE, LONG_DRAFT_RATE, and also MODEL,
        EMBEDDING_DIM, FAULT_KINDS (comma separated), API_KEY, STALL_S, JSON_MODE (1/0, true/false), PROFILE.
        `overrides` win.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        parsers: dict[str, tuple[str, Any]] = {
            "SEED": ("seed", int),
            "TTFT_S": ("ttft_s", float),
            "TOKENS_PER_S": ("tokens_per_s", float),
            "FAULT_RATE": ("fault_rate", float),
            "LONG_DRAFT_RATE": ("long_draft_rate", float),
            "EMBEDDING_DIM": ("embedding_dim", int),
            "STALL_S": ("stall_s", float),
            "MODEL": ("model", str),
            "API_KEY": ("api_key", str),
            "FAULT_KINDS": ("fault_kinds", parse_fault_kinds),
            "JSON_MODE": ("json_mode", parse_bool),
            "PROFILE": ("profile", str),
        }
        for suffix, (name, parse) in parsers.items():
            var = ENV_PREFIX + suffix
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                kwargs[name] = parse(raw.strip())
                cls(**{name: kwargs[name]})
            except ValueError as exc:
                raise ValueError(f"{var}={raw!r} is invalid: {exc}") from None
        kwargs.update(overrides)
        return cls(**kwargs)


def parse_fault_kinds(raw: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    return kinds


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {raw!r}")


def parse_quality(raw: str) -> tuple[str, float]:
    """Parse `keyword=0.7` as used by the `--quality` flag."""
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEYWORD=FLOAT, got {raw!r}")
    q = float(value)
    if not (0.0 <= q <= 1.0):
        raise ValueError(f"quality must be within [0, 1], got {q}")
    return key.strip().lower(), q
