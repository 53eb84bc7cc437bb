"""Command line: `python -m offline_engine --port 8765 --seed 0 ...` serves the engine with uvicorn.

Flag defaults come from the `DREAM_ENGINE_*` environment (see `EngineConfig.from_env`); the API
key is read only from `DREAM_ENGINE_API_KEY`, so it never appears in a process listing.
"""

from __future__ import annotations

import argparse
import sys

from offline_engine.config import EngineConfig, parse_fault_kinds, parse_quality
from offline_engine.profiles import PROFILE_NAMES


def _arg_type(parse, what: str):
    def convert(raw: str):
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid {what} {raw!r}: {exc}") from None
    return convert


def build_parser(defaults: EngineConfig) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m offline_engine",
        description="Serve the offline OpenAI-compatible engine (a deterministic simulator for offline runs "
                    "and tests). Defaults come from DREAM_ENGINE_* environment variables.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind")
    p.add_argument("--port", type=int, default=8765, help="TCP port to listen on")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of every answer and of the fault schedule")
    p.add_argument("--model", default=defaults.model, help="model id listed by /v1/models")
    p.add_argument("--ttft-s", type=float, default=defaults.ttft_s, help="seconds before the first byte")
    p.add_argument("--tokens-per-s", type=float, default=defaults.tokens_per_s,
                   help="generation speed in words per second (0 = instant)")
    p.add_argument("--embedding-dim", type=int, default=defaults.embedding_dim,
                   help="embedding size when a request sets no 'dimensions'")
    p.add_argument("--long-draft-rate", type=float, default=defaults.long_draft_rate,
                   help="fraction of prose answers that ramble on until cut by max_tokens")
    p.add_argument("--fault-rate", type=float, default=defaults.fault_rate,
                   help="fraction of requests answered with a simulated fault")
    p.add_argument("--fault-kinds", type=_arg_type(parse_fault_kinds, "fault kinds"),
                   default=",".join(defaults.fault_kinds),
                   help="comma-separated subset of 429,500,503,timeout,empty,malformed_json")
    p.add_argument("--stall-s", type=float, default=defaults.stall_s, help="how long a 'timeout' fault stalls")
    p.add_argument("--quality", action="append", type=_arg_type(parse_quality, "quality"), default=None,
                   metavar="KEYWORD=Q", help="hidden quality in [0,1] of a persona keyword (repeatable)")
    p.add_argument("--no-json-mode", dest="json_mode", action="store_false", default=defaults.json_mode,
                   help="answer HTTP 400 to JSON response_format requests (a server without JSON mode)")
    p.add_argument("--profile", choices=PROFILE_NAMES, default=defaults.profile,
                   help="behave like this server: structured output, context, embeddings, concurrency")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        defaults = EngineConfig.from_env()
    except ValueError as exc:
        print(f"offline_engine: {exc}", file=sys.stderr)
        return 2
    args = build_parser(defaults).parse_args(argv)
    try:
        config = EngineConfig(
            seed=args.seed, model=args.model, ttft_s=args.ttft_s, tokens_per_s=args.tokens_per_s,
            embedding_dim=args.embedding_dim, long_draft_rate=args.long_draft_rate, fault_rate=args.fault_rate,
            fault_kinds=args.fault_kinds, api_key=defaults.api_key, stall_s=args.stall_s,
            qualities=dict(args.quality) if args.quality is not None else defaults.qualities,
            json_mode=args.json_mode, profile=args.profile,
        )
    except ValueError as exc:
        print(f"offline_engine: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from offline_engine.server import build_app

    uvicorn.run(build_app(config), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
