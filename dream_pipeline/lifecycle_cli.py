"""`dream ps`, `dream stop`, `dream erase`: see and control what the project has running (lifecycle.py)."""

from __future__ import annotations

import argparse
import os
import sys


def cmd_ps(args: argparse.Namespace) -> int:
    from dream_pipeline.lifecycle import render_ps, running

    print(render_ps(running()))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from dream_pipeline.lifecycle import stop_all

    stop_all(lambda line: print(line, flush=True))
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from dream_pipeline.lifecycle import erase_state
    from resources.locations import state_dir

    folder = state_dir()
    what = f"{folder}: the embedded database with every book in it, Dagster's run history, the engine's log"
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"dream: erase deletes {what}; not run from a terminal, it needs --yes", file=sys.stderr)
            return 1
        answer = input(f"This stops everything and deletes {what}.\nType 'erase' to go on: ")
        if answer.strip() != "erase":
            print("nothing deleted")
            return 1
    erase_state(lambda line: print(line, flush=True))
    print(f"deleted {folder}")
    if os.environ.get("DREAM_DATABASE_URL"):
        print("the fabric at DREAM_DATABASE_URL is not touched: its books are still there")
    return 0


def add_lifecycle_commands(sub: argparse._SubParsersAction) -> None:
    ps = sub.add_parser("ps", help="what the project has running: database, engine, services, with pids and ports")
    ps.set_defaults(func=cmd_ps)
    stop = sub.add_parser("stop", help="stop everything the project started (services, engine, database); "
                                       "deletes nothing")
    stop.set_defaults(func=cmd_stop)
    erase = sub.add_parser("erase", help="stop everything and delete the state folder (.dream/) with the book; "
                                         "asks first")
    erase.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    erase.set_defaults(func=cmd_erase)
