"""The offline engine: a small, deterministic simulator of an OpenAI-compatible server.

It lets the whole system run offline and lets tests speak real HTTP through the real `openai`
client. The pipeline reaches it by base URL only, so any OpenAI-compatible server replaces it by
configuration alone. See docs/offline_engine.md.
"""

from offline_engine.config import EngineConfig
from offline_engine.launcher import ensure_engine, running_engine, stop_engine
from offline_engine.server import build_app

__all__ = ["EngineConfig", "build_app", "ensure_engine", "running_engine", "stop_engine"]
