"""`dream`: run the tournament, read the book, manage the embedded database and the offline engine."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

DEFAULT_BOOK = "space_time"


def _fabric():
    from dream_pipeline.settings import fabric_from_env

    return fabric_from_env(resolve=True)


def _preflight(need_engine: bool = True):
    """Bad settings stop `dream` here with one line naming them (exit code 2), not mid-run. Returns what
    the configured engine was probed to do (None for the offline engine)."""
    from dream_pipeline.preflight import preflight

    return preflight(need_engine=need_engine)


def _engine_line(fabric, llm, probed) -> None:
    """Probe the engine once (or keep what preflight found), store it, and say what the loop will do."""
    if probed is not None:
        fabric.save_engine_capabilities(probed.base_url, probed.model, probed.as_json())
    caps = probed or llm.probe_now()
    print(f"engine modes : {caps.summary()}")
    if not caps.embeddings:
        print("               no embedding engine: memory uses PostgreSQL full-text search and novelty a lexical "
              "similarity\n"
              "               (set DREAM_LLM_EMBEDDING_BASE_URL for a separate embedding server)")


# ---- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    probed = _preflight()  # before importing the definitions, which read settings too
    from dream_pipeline.definitions import defs
    from dream_pipeline.instance import dagster_instance
    from dream_pipeline.partitions import epoch_key
    from dream_pipeline.report import render_chapters, render_outline, render_standings
    from dream_pipeline.settings import llm_from_env

    fabric = _fabric()
    print(f"state fabric : {_redact(fabric.url())}")
    llm = llm_from_env(fabric=fabric, resolve=True)
    print(f"engine       : {llm.resolved_base_url()} (model {llm.model})")
    _engine_line(fabric, llm, probed)
    instance = dagster_instance()
    print(f"dagster home : {os.environ['DAGSTER_HOME']}")
    job = defs.resolve_job_def("epoch_job")
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO" if args.verbose else "ERROR"}}}}
    log = None if args.verbose else _log_file("dream-run.log")
    if log is not None:
        run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
        print(f"dagster log  : {log.name} (--verbose shows it here)")

    from dream_pipeline.downtime import note_resumption

    note_resumption(fabric, datetime.now(UTC), "dream run")  # the time since the last commit is not dead time
    written = []
    for _ in range(args.epochs):
        number = fabric.next_epoch_number(args.book)
        key = epoch_key(args.book, number)
        instance.add_dynamic_partitions("epochs", [key])
        for attempt in range(1, args.attempts + 1):
            started = time.perf_counter()
            print(f"epoch {number:>4} … ", end="", flush=True)
            with contextlib.redirect_stderr(log) if log is not None else contextlib.nullcontext():
                result = job.execute_in_process(
                    instance=instance, partition_key=key, run_config=run_config, raise_on_error=False
                )
            elapsed = time.perf_counter() - started
            if result.success:
                break
            print(f"failed after {elapsed:.1f} s (attempt {attempt}/{args.attempts}): {_failure(result)}")
        else:
            print(f"giving up on {key}; the next `dream run` resumes it", file=sys.stderr)
            return 1
        epoch = fabric.epoch(key)
        chapter = fabric.chapter_for_epoch(epoch.epoch_id)
        print(f"{elapsed:5.1f} s  chapter {chapter.chapter_number} by the {chapter.author}: {chapter.title!r}"
              f"{_lineage_note(fabric, epoch)}")
        written.append(chapter.chapter_number)

    chapters = fabric.chapters(args.book)
    print()
    print(render_outline(chapters))
    if not args.no_text:
        print(render_chapters([c for c in chapters if c.chapter_number in written]))
    print(render_standings(fabric.standings(args.book)))
    return 0


def _log_file(name: str):
    """A log file under the state folder's logs/, opened for appending (line-buffered)."""
    from resources.locations import state_dir

    folder = state_dir() / "logs"
    folder.mkdir(exist_ok=True)
    return open(folder / name, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the whole command


def _lineage_note(fabric, epoch) -> str:
    if epoch.loser_agent_id is None:
        return ""
    [loser] = fabric.agents([epoch.loser_agent_id])
    joined = [
        s.name for s in fabric.standings(epoch.book)
        if s.joined_epoch == epoch.epoch_number + 1 and s.origin != "cast"
    ]
    return f"; {loser.name} eliminated" + (f", {joined[0]} joins" if joined else "")


def _failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster wraps the step's own exception
                error = error.cause
            line = error.message.strip().splitlines()[-1]
            # a dg.Failure is the pipeline's own one-line explanation: no class name in front of it
            return line.split(": ", 1)[-1] if error.cls_name == "Failure" else line
    return "run failed"


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url


# ---- reading -----------------------------------------------------------------------------------


def cmd_book(args: argparse.Namespace) -> int:
    from dream_pipeline.report import render_chapters, render_outline

    chapters = _fabric().chapters(args.book)
    if not chapters:
        print(f"the book {args.book!r} has no chapter yet: run `dream run`")
        return 0
    if args.last:  # only the chapters asked for, not the outline of the whole book before them
        shown = chapters[-args.last:]
        print(f"The last {len(shown)} of {len(chapters)} chapters (`dream book` prints the outline and all of them):\n")
        print(render_chapters(shown))
        return 0
    print(render_outline(chapters))
    print(render_chapters(chapters))
    return 0


def cmd_standings(args: argparse.Namespace) -> int:
    from dream_pipeline.report import render_standings

    print(render_standings(_fabric().standings(args.book)))
    return 0


# ---- database and engine -----------------------------------------------------------------------


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
        applied = _fabric().migrate()
        print("applied: " + ", ".join(applied) if applied else "up to date")
    return 0


def cmd_engine(args: argparse.Namespace) -> int:
    from offline_engine import EngineConfig, ensure_engine, stop_engine
    from resources.locations import state_dir

    if args.action == "start":
        if os.environ.get("DREAM_LLM_BASE_URL"):
            from dream_pipeline.settings import ConfigError

            raise ConfigError("DREAM_LLM_BASE_URL", "is set, so the project uses that server, not the offline "
                                                    "engine; unset it to start and use the offline engine")
        print(ensure_engine(state_dir(), EngineConfig.from_env()))
    elif args.action == "stop":
        print("stopped" if stop_engine(state_dir()) else "the offline engine was not running")
    return 0


def _service_commands(args: argparse.Namespace) -> dict[str, list[str]]:
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


def _prepare_services(probed=None, probe: bool = True) -> None:
    """Everything the daemon and the runs share: storage, migrations, the embedded database, the engine."""
    from dream_pipeline.experiments import enabled_books
    from dream_pipeline.instance import prepare_dagster_home
    from dream_pipeline.settings import llm_from_env

    enabled_books()  # a bad experiments file is an error now, not in the daemon's log later
    _fabric().migrate()
    prepare_dagster_home()
    _resume_orphaned_runs()
    fabric = _fabric()
    llm = llm_from_env(fabric=fabric, resolve=True)
    print(f"engine       : {llm.resolved_base_url()}")
    if probe:
        _engine_line(fabric, llm, probed)
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
    from dream_pipeline.instance import dagster_instance
    from dream_pipeline.loop_state import resume_orphaned_runs

    resumed = resume_orphaned_runs(dagster_instance(), time.time())
    if resumed:
        keys = ", ".join(sorted({r.tags.get("dagster/partition", r.job_name) for r in resumed}))
        print(f"resumed      : {len(resumed)} run(s) left by a process that is gone ended as canceled ({keys});"
              " the loop starts them again now")


STOP_REASON = "stopped by Ctrl-C of `dream start`; the next start resumes its epoch"


def _stop_runs(children) -> list:
    """Before the services stop: freeze the daemon (no run starts or dequeues), kill the run workers and
    end every live run, queued ones included, as canceled (no failures, no interruption traces)."""
    import signal

    from dream_pipeline.instance import dagster_instance
    from dream_pipeline.loop_state import cancel_runs, stop_run_workers

    if "daemon" in children:
        _signal_group(children["daemon"], signal.SIGSTOP)
    try:
        instance = dagster_instance()
        runs = stop_run_workers(instance)
        if "daemon" in children:  # a worker still starting has reported no pid yet: its process tells
            _kill_run_workers_of_group(children["daemon"].pid)
        cancel_runs(instance, runs, STOP_REASON)
        return runs
    except Exception as exc:  # storage down: the next start recognises the runs as orphaned
        print(f"dream: could not stop the runs cleanly ({exc}); the next start resumes them", file=sys.stderr)
        return []


def _kill_run_workers_of_group(group: int) -> None:
    """SIGKILL the run worker processes (the code server's `multiprocessing` spawn children) of a group."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == group and "spawn_main" in " ".join(process.info["cmdline"] or []):
                process.kill()


def cmd_start(args: argparse.Namespace) -> int:
    """The whole system in the foreground: daemon (the loop), webserver, deck; Ctrl-C stops those three
    (the database and the engine stay up for the next command: `dream stop` stops them)."""
    import signal
    import subprocess

    probed = _preflight()
    _prepare_services(probed)
    from dream_pipeline.epoch_lines import new_epoch_lines

    logs = {name: None if args.verbose else _log_file(f"{name}.log") for name in _service_commands(args)}
    children = {
        # each service in its own process group, so stopping it also stops what it spawned (code servers, runs)
        name: subprocess.Popen(command, start_new_session=True, stdout=logs[name],  # noqa: S603
                               stderr=subprocess.STDOUT if logs[name] else None)
        for name, command in _service_commands(args).items()
    }
    _record_services(args, children)
    print(f"Dagster UI   : http://{args.host}:{args.port}")
    if "deck" in children:
        print(f"deck         : http://{args.host}:{args.deck_port}")
    if not args.verbose:
        print(f"logs         : {Path(logs['daemon'].name).parent}/ (the services' own output; "
              "--verbose shows it here)")
    if os.environ.get("DREAM_LOOP", "on") == "off":
        print("the loop   : off (DREAM_LOOP=off): start dream_loop_sensor in the UI to run it. Ctrl-C stops the UI "
              "and the deck; `dream stop` also stops the database and the engine.", flush=True)
    else:
        print("the loop starts within seconds; a line per epoch follows (`dream status` shows more). Ctrl-C stops "
              "the loop, the UI and the deck; `dream stop` also stops the database and the engine.", flush=True)
    fabric = _fabric()
    printed: set[tuple[str, str]] = set()
    new_epoch_lines(fabric.loop_timeline(50), printed)  # what finished before this start is not news
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    last_look = 0.0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None and not stopping:
                print(f"dream: {name} exited with {child.returncode}; stopping", file=sys.stderr)
                stopping = True
        if time.monotonic() - last_look >= 1.0:
            last_look = time.monotonic()
            try:
                for line in new_epoch_lines(fabric.loop_timeline(50), printed):
                    print(line, flush=True)
            except Exception as exc:  # noqa: BLE001 - the database may restart under us; the loop goes on
                print(f"dream: cannot read the fabric just now ({type(exc).__name__}); retrying", file=sys.stderr)
        time.sleep(0.5)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans behind
    print("stopping …", flush=True)
    runs = _stop_runs(children)
    if "daemon" in children:  # the daemon first, alone: it finishes its ticks, then stops its code server
        daemon = children["daemon"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGTERM)
        _signal_group(daemon, signal.SIGCONT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=20)
    for child in children.values():
        _signal_group(child, signal.SIGTERM)
        _signal_group(child, signal.SIGCONT)
    deadline = time.monotonic() + 20
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"dream: {name} did not stop in 20 s; killing it", file=sys.stderr)
        _signal_group(child, signal.SIGKILL)  # whatever is left of its group
    try:  # runs a tick in flight at the freeze requested as the daemon resumed to stop: every process is gone
        from dream_pipeline.instance import dagster_instance
        from dream_pipeline.loop_state import cancel_runs, stop_run_workers

        instance = dagster_instance()
        late = stop_run_workers(instance)
        cancel_runs(instance, late, STOP_REASON)
        runs += [r for r in late if r.run_id not in {known.run_id for known in runs}]
    except Exception as exc:  # storage down: the next start recognises the runs as orphaned
        print(f"dream: could not cancel the last runs ({exc}); the next start resumes them", file=sys.stderr)
    if runs:
        print(f"canceled {len(runs)} staged or running run(s)")
    print("stopped (epochs that were interrupted are resumed by the next start)")
    return 0


def _record_services(args: argparse.Namespace, children: dict) -> None:
    """So that `dream ps` lists them and `dream stop` finds them (dream_pipeline/lifecycle.py)."""
    from dream_pipeline.lifecycle import record_service

    record_service("start")
    ports = {"webserver": args.port, "deck": getattr(args, "deck_port", None)}
    for name, child in children.items():
        record_service(name, child.pid, host=args.host, port=ports.get(name), group=True)


def _signal_group(child, signum) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


def _exec_service(args: argparse.Namespace, name: str, probed=None) -> int:
    _prepare_services(probed, probe=name != "webserver")
    command = _service_commands(args)[name]
    _record_exec(name, args)
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)
    return 0  # not reached


def _record_exec(name: str, args: argparse.Namespace) -> None:
    """This process becomes the service (exec keeps the pid): `dream ps` and `dream stop` find it by it."""
    from dream_pipeline.lifecycle import record_service

    record_service(name, host=args.host, port=None if name == "daemon" else args.port)


def cmd_daemon(args: argparse.Namespace) -> int:
    return _exec_service(args, "daemon", _preflight())


def cmd_webserver(args: argparse.Namespace) -> int:
    _preflight(need_engine=False)  # the UI launches runs, the daemon's runs call the engine
    return _exec_service(args, "webserver")


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` (webserver and daemon together) on this project's instance."""
    from resources.locations import PROJECT_ROOT

    os.environ["DREAM_LOOP"] = "on" if args.loop else "off"  # read by the loop sensor's default status
    _prepare_services(_preflight())
    print(f"open http://{args.host}:{args.port} (Ctrl-C stops it)")
    print("the loop   : " + ("ON: new epochs are written while the UI runs (stop dream_loop_sensor to only look)"
                             if args.loop else "off: nothing is written unless you start dream_loop_sensor in the UI "
                             "or materialize an epoch (`dream ui --loop` or `dream start` runs the loop)"), flush=True)
    _record_exec("ui", args)
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
               "-h", args.host, "-p", str(args.port)]
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)
    return 0  # not reached


def cmd_deck(args: argparse.Namespace) -> int:
    from deck.launcher import run_deck
    from dream_pipeline.cli_errors import require_databases

    require_databases(deck=True)  # a deck on an unreachable server would only show the error in the browser
    _record_exec("deck", args)
    run_deck(args.host, args.port)
    return 0  # not reached


def cmd_status(args: argparse.Namespace) -> int:
    from dream_pipeline.cli_errors import require_databases
    from dream_pipeline.status import render_status

    require_databases(dagster=True)  # before Dagster's storage retries an unreachable server for 15 s
    print(render_status(_fabric(), limit=args.epochs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dream",
        description="Space Time Generative Engine: persona agents write a book in an evolutionary tournament.",
        epilog="Configuration comes from DREAM_* environment variables; see README.md ('Configuration').",
    )
    parser.add_argument("--verbose", action="store_true", help="on an error, print the trace too (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run epochs of the tournament, then print the book and the standings")
    run.add_argument("--epochs", type=int, default=3, help="how many epochs to run (default: 3)")
    run.add_argument("--book", default=DEFAULT_BOOK, help="which book (SPICA domain) to write (default: %(default)s)")
    run.add_argument("--attempts", type=int, default=2, help="tries per epoch before giving up (default: 2)")
    run.add_argument("--no-text", action="store_true", help="print only the outline, not the new chapters")
    run.add_argument("--verbose", action="store_true", help="Dagster's logs on the terminal instead of a log file")
    run.set_defaults(func=cmd_run)

    book = sub.add_parser("book", help="print the book so far")
    book.add_argument("--book", default=DEFAULT_BOOK)
    book.add_argument("--last", type=int, default=0, help="only the last N chapters in full")
    book.set_defaults(func=cmd_book)

    standings = sub.add_parser("standings", help="print the agents' ratings")
    standings.add_argument("--book", default=DEFAULT_BOOK)
    standings.set_defaults(func=cmd_standings)

    db = sub.add_parser("db", help="the embedded PostgreSQL: print its URL (starting it), stop it, migrate")
    db.add_argument("action", choices=["url", "stop", "migrate"])
    db.set_defaults(func=cmd_db)

    engine = sub.add_parser("engine", help="the offline engine (a simulator of an OpenAI-compatible server)")
    engine.add_argument("action", choices=["start", "stop"])
    engine.set_defaults(func=cmd_engine)

    start = sub.add_parser("start", help="run the whole system: the continuous loop, the Dagster UI, the deck")
    start.add_argument("--host", default="127.0.0.1", help="bind address of the UI and deck (default: %(default)s)")
    start.add_argument("--port", type=int, default=3000, help="Dagster UI port (default: %(default)s)")
    start.add_argument("--deck-port", type=int, default=8501, help="deck port (default: %(default)s)")
    start.add_argument("--no-deck", action="store_true", help="do not start the deck")
    start.add_argument("--verbose", action="store_true", help="the services' logs on the terminal, not in files")
    start.set_defaults(func=cmd_start)

    status = sub.add_parser("status", help="the loop's state: running or paused for PHASE, last epochs, dead time")
    status.add_argument("--epochs", type=int, default=12, help="how many recent epochs to list (default: 12)")
    status.set_defaults(func=cmd_status)

    for name, func, port, text in [
        ("daemon", cmd_daemon, 3000, "only the Dagster daemon (the loop), for a systemd unit"),
        ("webserver", cmd_webserver, 3000, "only the Dagster webserver, for a systemd unit"),
        ("ui", cmd_ui, 3000, "`dagster dev` (webserver + daemon) on this project's instance"),
        ("deck", cmd_deck, 8501, "the Epistemic Deck (Streamlit), reading the fabric read-only"),
    ]:
        service = sub.add_parser(name, help=text)
        service.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
        service.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
        service.set_defaults(func=func)
        if name == "ui":
            service.add_argument("--loop", action="store_true",
                                 help="start the loop sensor too (default: off, so opening the UI writes nothing)")

    from dream_pipeline.lifecycle_cli import add_lifecycle_commands
    from dream_pipeline.search import add_search_command
    from dream_pipeline.worlds_cli import add_world_commands

    add_search_command(sub)
    add_world_commands(sub)
    add_lifecycle_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dream_pipeline.cli_errors import run_command, split_verbose

    argv, verbose = split_verbose(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if getattr(args, "epochs", 1) < 1:
        print("dream: --epochs must be at least 1", file=sys.stderr)
        return 2
    # one error path for every command (dream_pipeline/cli_errors.py); services keep libpq's connect timeout
    return run_command(lambda: args.func(args), verbose=verbose, limit_connect=args.command not in SERVICES)


SERVICES = {"start", "daemon", "webserver", "ui", "deck"}


if __name__ == "__main__":
    sys.exit(main())
