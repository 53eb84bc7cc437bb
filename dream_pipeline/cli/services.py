"""The services `dream` manages: the database and the offline engine, the Dagster daemon, webserver and UI, the
deck, and what the project has running (`dream db|engine|daemon|webserver|ui|deck|ps|stop|erase`; lifecycle.py)."""


from __future__ import annotations

import argparse
import os
import sys
import time

from dream_pipeline.cli.common import engine_line, open_fabric, run_preflight


def cmd_db(args: argparse.Namespace) -> int:
    from resources import embedded_postgres

    if args.action == "url":
        if os.environ.get("DREAM_DATABASE_URL"):
            print(os.environ["DREAM_DATABASE_URL"])
        else:
            print(embedded_postgres.embedded_url())
    elif args.action == "stop":
        print("stopped" if embedded_postgres.stop() else "the embedded server was not running")
    elif args.action == "migrate":
        applied = open_fabric().migrate()
        print("applied: " + ", ".join(applied) if applied else "up to date")
    return 0


def cmd_engine(args: argparse.Namespace) -> int:
    from offline_engine import EngineConfig, ensure_engine, stop_engine
    from resources.locations import state_dir

    if args.action == "start":
        if os.environ.get("DREAM_LLM_BASE_URL"):
            from dream_pipeline.config.settings import ConfigError

            raise ConfigError("DREAM_LLM_BASE_URL", "is set, so the project uses that server, not the offline "
                                                    "engine; unset it to start and use the offline engine")
        print(ensure_engine(state_dir(), EngineConfig.from_env()))
    elif args.action == "stop":
        print("stopped" if stop_engine(state_dir()) else "the offline engine was not running")
    return 0


def service_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    from resources.locations import PROJECT_ROOT

    workspace = str(PROJECT_ROOT / "workspace.yaml")
    commands = {
        "daemon": [sys.executable, "-m", "dagster._daemon", "run", "-w", workspace],
        "webserver": [sys.executable, "-m", "dagster_webserver", "-h", args.host, "-p", str(args.port), "-w", workspace],
    }
    if not getattr(args, "no_deck", True):
        from deck.launcher import deck_command

        commands["deck"] = deck_command(args.host, args.deck_port)
    return commands


def prepare_services(probed=None, probe: bool = True) -> None:
    """Everything the daemon and the runs share: storage, migrations, the embedded database, the engine."""
    from dream_pipeline.cli.instance import prepare_dagster_home
    from dream_pipeline.config.experiments import enabled_books
    from dream_pipeline.config.settings import llm_from_env

    enabled_books()  # a bad experiments file is an error now, not in the daemon's log later
    open_fabric().migrate()
    prepare_dagster_home()
    _resume_orphaned_runs()
    fabric = open_fabric()
    llm = llm_from_env(fabric=fabric, resolve=True)
    print(f"engine       : {llm.resolved_base_url()}")
    if probe:
        engine_line(fabric, llm, probed)
    if not llm.base_url:
        from offline_engine import EngineConfig

        engine = EngineConfig.from_env()
        if engine.ttft_s == 0 and engine.tokens_per_s == 0:
            print("               the offline engine answers instantly, so epochs take about a second and the "
                  "loop is\n               bound by starting a run worker (seconds of CPU each); for a real "
                  "server's pace set\n               e.g. DREAM_ENGINE_TTFT_S=0.3 DREAM_ENGINE_TOKENS_PER_S=250")


def _resume_orphaned_runs() -> None:
    """Runs a stopped or killed `dream start` left STARTING/STARTED end as canceled now, so the loop
    starts their epochs at its first tick instead of after Dagster's start timeout."""
    from dream_pipeline.cli.instance import dagster_instance
    from dream_pipeline.defs.loop.loop_state import resume_orphaned_runs

    resumed = resume_orphaned_runs(dagster_instance(), time.time())
    if resumed:
        keys = ", ".join(sorted({r.tags.get("dagster/partition", r.job_name) for r in resumed}))
        print(f"resumed      : {len(resumed)} run(s) left by a process that is gone ended as canceled ({keys});"
              " the loop starts them again now")


def _exec_service(args: argparse.Namespace, name: str, probed=None) -> int:
    prepare_services(probed, probe=name != "webserver")
    command = service_commands(args)[name]
    record_exec(name, args)
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)
    return 0  # not reached


def record_exec(name: str, args: argparse.Namespace) -> None:
    """This process becomes the service (exec keeps the pid): `dream ps` and `dream stop` find it by it."""
    from dream_pipeline.cli.lifecycle import record_service

    record_service(name, host=args.host, port=None if name == "daemon" else args.port)


def cmd_daemon(args: argparse.Namespace) -> int:
    return _exec_service(args, "daemon", run_preflight())


def cmd_webserver(args: argparse.Namespace) -> int:
    run_preflight(need_engine=False)  # the UI launches runs, the daemon's runs call the engine
    return _exec_service(args, "webserver")


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` (webserver and daemon together) on this project's instance."""
    from resources.locations import PROJECT_ROOT

    os.environ["DREAM_LOOP"] = "on" if args.loop else "off"  # read by the loop sensor's default status
    prepare_services(run_preflight())
    print(f"open http://{args.host}:{args.port} (Ctrl-C stops it)")
    print("the loop   : " + ("ON: new epochs are written while the UI runs (stop dream_loop_sensor to only look)"
                             if args.loop else "off: nothing is written unless you start dream_loop_sensor in the UI "
                             "or materialize an epoch (`dream ui --loop` or `dream start` runs the loop)"), flush=True)
    record_exec("ui", args)
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
               "-h", args.host, "-p", str(args.port)]
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)
    return 0  # not reached


def cmd_deck(args: argparse.Namespace) -> int:
    from deck.launcher import run_deck
    from dream_pipeline.cli.errors import require_databases

    require_databases(deck=True)  # a deck on an unreachable server would only show the error in the browser
    record_exec("deck", args)
    run_deck(args.host, args.port)
    return 0  # not reached


def cmd_ps(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.lifecycle import render_ps, running

    print(render_ps(running()))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.lifecycle import stop_all

    stop_all(lambda line: print(line, flush=True))
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.lifecycle import erase_state
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
