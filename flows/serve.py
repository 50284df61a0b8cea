"""The scheduled retrain: a deployment of flows/retrain.py with a cron schedule, served by a
runner process next to a local Prefect server, both on 127.0.0.1.

    python -m flows.serve [--port 4200]     # `make serve`: server + runner; Ctrl-C stops both
    python -m flows.serve --no-server       # the runner alone, for the server at $PREFECT_API_URL

The UI at http://127.0.0.1:<port> talks to the API on the same port. On Ctrl-C (or SIGTERM)
the runner stops first, then the server, so neither is left polling the other.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prefect.schedules import Cron

DEPLOYMENT = "scheduled"
CRON = "0 3 * * *"          # every day at 03:00
TIMEZONE = "UTC"
HOST = "127.0.0.1"
START_SECONDS = 180         # the server's first start creates its database
STOP_SECONDS = 15           # grace before a child that ignores the stop signal is killed


def deployment():
    """The retrain deployment with its cron schedule (what the runner registers)."""
    from flows.retrain import retrain

    return retrain.to_deployment(name=DEPLOYMENT, schedules=[Cron(CRON, timezone=TIMEZONE)],
                                 tags=["retrain"],
                                 description="Scheduled retrain: every stage through DVC, "
                                             "every stage tracked in MLflow.")


def run_runner() -> int:
    """Serve the deployment until interrupted; an interrupt is a normal end, not an error."""
    from prefect import serve

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(deployment())
    except KeyboardInterrupt:
        pass
    return 0


def server_env(port: int) -> dict[str, str]:
    """Settings that make the server, its UI and the runner agree on one API address."""
    api = f"http://{HOST}:{port}/api"
    return {**os.environ, "PREFECT_API_URL": api, "PREFECT_UI_API_URL": api,
            "PREFECT_SERVER_API_HOST": HOST, "PREFECT_SERVER_API_PORT": str(port)}


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen, first: int) -> None:
    """Signal the child's process group, then kill it if it has not ended in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, first)
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run_with_server(port: int) -> int:
    """Start the server, wait for its API, start the runner; stop both on Ctrl-C / SIGTERM or
    when either ends. Children get their own process groups, so a terminal's Ctrl-C reaches
    this process alone and the shutdown order holds."""
    env = server_env(port)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    server = subprocess.Popen(["prefect", "server", "start", "--host", HOST, "--port", str(port)],
                              env=env, start_new_session=True)
    runner = None
    code = 0
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _healthy(port):
            if stopping or server.poll() is not None or time.monotonic() > deadline:
                if not stopping:
                    print(f"serve: the Prefect server did not answer on port {port} "
                          f"(is the port taken?)", file=sys.stderr)
                    code = 1
                return code
            time.sleep(0.5)
        print(f"serve: Prefect UI at http://{HOST}:{port} ; deployment retrain/{DEPLOYMENT} "
              f"runs at '{CRON}' ({TIMEZONE}); Ctrl-C stops", flush=True)
        runner = subprocess.Popen([sys.executable, "-m", "flows.serve", "--no-server"], env=env,
                                  start_new_session=True)
        while not stopping and server.poll() is None and runner.poll() is None:
            time.sleep(0.5)
        if not stopping:
            ended = "server" if server.poll() is not None else "runner"
            print(f"serve: the {ended} stopped; stopping the rest", file=sys.stderr)
            code = 1
        return code
    finally:
        print("serve: stopping the runner and the Prefect server", file=sys.stderr, flush=True)
        if runner is not None:
            _stop(runner, signal.SIGINT)
        _stop(server, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the cron-scheduled retrain deployment.")
    parser.add_argument("--port", type=int, default=4200, help="Prefect server port (4200)")
    parser.add_argument("--no-server", action="store_true",
                        help="run the deployment runner only, against $PREFECT_API_URL")
    args = parser.parse_args(argv)
    return run_runner() if args.no_server else run_with_server(args.port)


if __name__ == "__main__":
    sys.exit(main())
