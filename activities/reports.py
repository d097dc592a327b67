"""The wrap-up activity: build the cycle's report and publish it as an event.

The report itself (model, the pure steps, the Markdown) is
:mod:`peerlearn.readside.report`, the same builder the live report endpoints
use. The activity appends the report as a ``WrapUpPublished`` event, so the
``reports`` and ``action_items`` tables are projections like the others and
survive a rebuild.
"""

from __future__ import annotations

from dataclasses import asdict

from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from peerlearn import eventstore
from peerlearn.access import SYSTEM
from peerlearn.events import EventType
from peerlearn.readside.report import (
    build_report,
    extract_action_items,
    load_cycle,
    load_names,
    render_markdown,
)
from peerlearn.settings import Settings
from workflows.types import BUILD_WRAPUP_REPORT, WrapUpInput, WrapUpOutput


def report_id_for(cycle_id: str) -> str:
    return f"{cycle_id}-wrapup"


class ReportActivities:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    @activity.defn(name=BUILD_WRAPUP_REPORT)
    async def build_wrapup_report(self, inp: WrapUpInput) -> WrapUpOutput:
        async with self.pool.connection() as conn:
            rows = await load_cycle(conn, inp.cycle_id)
            if rows is None:
                raise RuntimeError(f"cycle {inp.cycle_id!r} has no read model yet")
            # The cycle's action items are not projected yet: they come from its notes.
            partners = (await load_names(conn, rows.cycle["programme_id"])).organisations
            actions = extract_action_items(rows.meetings, rows.notes, inp.follow_up_at, partners)
            report = await build_report(
                conn,
                SYSTEM,
                cycle_id=inp.cycle_id,
                cycle=rows,
                action_items=actions,
                title=f"Wrap-up: {rows.cycle['title']}",
                generated_at=inp.occurred_at,
                follow_up_at=inp.follow_up_at,
            )
            rid = report_id_for(inp.cycle_id)
            async with conn.transaction():
                res = await eventstore.append(
                    conn,
                    stream_id=inp.cycle_id,
                    type=EventType.WRAP_UP_PUBLISHED,
                    payload={
                        "report_id": rid,
                        "report": report.to_json(),
                        "markdown": render_markdown(report),
                        "action_items": [asdict(a) for a in actions],
                        "follow_up_at": inp.follow_up_at.isoformat(),
                        "phase": inp.phase,
                    },
                    idempotency_key=inp.idempotency_key,
                    occurred_at=inp.occurred_at,
                )
        return WrapUpOutput(
            report_id=res.event.payload["report_id"],
            version=res.event.version,
            action_items=len(res.event.payload.get("action_items", [])),
            outbox_ids=res.outbox_ids,
        )
