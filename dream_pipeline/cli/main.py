"""`dream`: run the tournament, read the book, manage the embedded database and the offline engine."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from dream_pipeline.cli.read import cmd_book, cmd_standings, cmd_status
from dream_pipeline.cli.run import cmd_run
from dream_pipeline.cli.services import cmd_daemon, cmd_db, cmd_deck, cmd_engine, cmd_ui, cmd_webserver
from dream_pipeline.cli.start import cmd_start
from dream_pipeline.domains.book import DEFAULT_BOOK

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dream",
        description="Space Time Generative Engine: persona agents write a book in an evolutionary tournament.",
        epilog="Configuration comes from DREAM_* environment variables; see README.md ('Configuration').",
    )
    parser.add_argument("--verbose", action="store_true", help="on an error, print the trace too (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run epochs of the tournament, then print the book and the standings")
    run.add_argument("--epochs", type=int, default=3,
                     help="how many epochs to run in total, the enabled experiments taking turns as in the loop "
                          "(default: 3)")
    run.add_argument("--domain", default=None,
                     help="run only the enabled experiments of this domain (or instance), e.g. code_repair")
    run.add_argument("--book", default=None,
                     help=f"run only this book (SPICA domain instance), e.g. {DEFAULT_BOOK}, enabled or not")
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

    from dream_pipeline.cli.search import add_search_command
    from dream_pipeline.cli.services import add_lifecycle_commands
    from dream_pipeline.cli.worlds import add_world_commands

    add_search_command(sub)
    add_world_commands(sub)
    add_lifecycle_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dream_pipeline.cli.errors import run_command, split_verbose

    argv, verbose = split_verbose(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if getattr(args, "epochs", 1) < 1:
        print("dream: --epochs must be at least 1", file=sys.stderr)
        return 2
    # one error path for every command (dream_pipeline/cli/errors.py); services keep libpq's connect timeout
    return run_command(lambda: args.func(args), verbose=verbose, limit_connect=args.command not in SERVICES)


SERVICES = {"start", "daemon", "webserver", "ui", "deck"}


if __name__ == "__main__":
    sys.exit(main())
