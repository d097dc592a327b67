"""Activities: every piece of I/O the workflows need (PostgreSQL, webhooks, the miner).

``all_activities`` builds the callables a worker registers; each activity class
takes its dependencies in ``__init__`` so tests can build it on a real pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from peerlearn.settings import Settings


def all_activities(pool: AsyncConnectionPool, settings: Settings) -> list[Callable[..., Any]]:
    from activities.cycle import CycleActivities
    from activities.mail import OutboxActivities
    from activities.mining import MiningActivities
    from activities.reports import ReportActivities

    mining = MiningActivities(pool, settings)
    acts: list[Callable[..., Any]] = list(mining.all())
    cycle = CycleActivities(pool, settings)
    acts += [
        cycle.append_cycle_event,
        cycle.submit_note,
        OutboxActivities(pool, settings).deliver_outbox,  # webhook, then e-mail
        ReportActivities(pool, settings).build_wrapup_report,
    ]
    return acts
