"""`dream start`: the daemon (the loop), the webserver and the deck in the foreground, one line per epoch; Ctrl-C
stops them cleanly (live runs end as canceled, the next start resumes their epochs)."""


from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from dream_pipeline.cli.common import log_file, open_fabric, run_preflight
from dream_pipeline.cli.services import prepare_services, service_commands

STOP_REASON = "stopped by Ctrl-C of `dream start`; the next start resumes its epoch"


def _stop_runs(children) -> list:
    """Before the services stop: freeze the daemon (no run starts or dequeues), kill the run workers and
    end every live run, queued ones included, as canceled (no failures, no interruption traces)."""
    import signal

    from dream_pipeline.cli.instance import dagster_instance
    from dream_pipeline.defs.loop.loop_state import cancel_runs, stop_run_workers

    if "daemon" in children:
        signal_group(children["daemon"], signal.SIGSTOP)
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

    probed = run_preflight()
    prepare_services(probed)
    from dream_pipeline.cli.epoch_lines import new_epoch_lines

    logs = {name: None if args.verbose else log_file(f"{name}.log") for name in service_commands(args)}
    children = {
        # each service in its own process group, so stopping it also stops what it spawned (code servers, runs)
        name: subprocess.Popen(command, start_new_session=True, stdout=logs[name],  # noqa: S603
                               stderr=subprocess.STDOUT if logs[name] else None)
        for name, command in service_commands(args).items()
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
    fabric = open_fabric()
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
        signal_group(daemon, signal.SIGCONT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=20)
    for child in children.values():
        signal_group(child, signal.SIGTERM)
        signal_group(child, signal.SIGCONT)
    deadline = time.monotonic() + 20
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"dream: {name} did not stop in 20 s; killing it", file=sys.stderr)
        signal_group(child, signal.SIGKILL)  # whatever is left of its group
    try:  # runs a tick in flight at the freeze requested as the daemon resumed to stop: every process is gone
        from dream_pipeline.cli.instance import dagster_instance
        from dream_pipeline.defs.loop.loop_state import cancel_runs, stop_run_workers

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
    """So that `dream ps` lists them and `dream stop` finds them (dream_pipeline/cli/lifecycle.py)."""
    from dream_pipeline.cli.lifecycle import record_service

    record_service("start")
    ports = {"webserver": args.port, "deck": getattr(args, "deck_port", None)}
    for name, child in children.items():
        record_service(name, child.pid, host=args.host, port=ports.get(name), group=True)


def signal_group(child, signum) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass
