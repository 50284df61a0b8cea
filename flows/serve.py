"""The scheduled retrain: a deployment of flows/retrain.py with a cron schedule, served by
this process (the Prefect server must be running: `make serve` starts both on 127.0.0.1).

    python -m flows.serve        # blocks; runs are visible at http://127.0.0.1:4200
"""
from __future__ import annotations

from prefect.schedules import Cron

from flows.retrain import retrain

DEPLOYMENT = "scheduled"
CRON = "0 3 * * *"          # every day at 03:00
TIMEZONE = "UTC"


def deployment():
    """The retrain deployment with its cron schedule (what `serve` registers)."""
    return retrain.to_deployment(name=DEPLOYMENT, schedules=[Cron(CRON, timezone=TIMEZONE)],
                                 tags=["retrain"],
                                 description="Scheduled retrain: every stage through DVC, "
                                             "every stage tracked in MLflow.")


def main() -> None:
    from prefect import serve

    serve(deployment())


if __name__ == "__main__":
    main()
