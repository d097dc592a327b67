"""The wrap-up report of a cycle, built from its read models.

:func:`build_report_content` is pure (rows in, report out) so the analyst side
can enrich it with themes and ranked practices without touching the activity.
The activity appends the report as a ``WrapUpPublished`` event, so the
``reports`` and ``action_items`` tables are projections like the others and
survive a rebuild.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from peerlearn import eventstore
from peerlearn.settings import Settings
from workflows.types import BUILD_WRAPUP_REPORT, WrapUpInput, WrapUpOutput

# A note line that is an action item: "Action: ...", "TODO: ...", "- [ ] ...".
_ACTION_LINE = re.compile(r"^\s*(?:[-*]\s*)?(?:\[ \]\s*|action:\s*|todo:\s*)(.+)$", re.IGNORECASE)


@dataclass
class ReportContent:
    content: dict[str, Any]
    markdown: str
    action_items: list[dict[str, Any]] = field(default_factory=list)


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def extract_action_items(
    meetings: list[dict[str, Any]], notes: list[dict[str, Any]], follow_up_at: datetime
) -> list[dict[str, Any]]:
    """Who does what by when: one action plan per site-visit host, plus every
    line of a note written as an action."""
    items: list[dict[str, Any]] = []
    for m in meetings:
        if m["state"] == "held" and m["kind"] == "site_visit" and m.get("host"):
            items.append(
                {
                    "id": f"plan-{m['id']}",
                    "owner": m["host"],
                    "what": f"Action plan answering the peers' recommendations from {m['id']}",
                    "due_at": follow_up_at.isoformat(),
                    "meeting_id": m["id"],
                }
            )
    for n in notes:
        for i, line in enumerate(str(n["text"]).splitlines()):
            hit = _ACTION_LINE.match(line)
            if hit and hit.group(1).strip():
                items.append(
                    {
                        "id": f"note-{n['id']}-{i}",
                        "owner": n["author_organisation"],
                        "what": hit.group(1).strip(),
                        "due_at": follow_up_at.isoformat(),
                        "meeting_id": n["meeting_id"],
                    }
                )
    return items


def build_report_content(
    cycle: dict[str, Any],
    meetings: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    *,
    generated_at: datetime,
    follow_up_at: datetime,
) -> ReportContent:
    """The report as JSON and Markdown. Extend here (themes, practices)."""
    by_meeting: dict[str, list[dict[str, Any]]] = {}
    for n in notes:
        by_meeting.setdefault(n["meeting_id"], []).append(n)
    actions = extract_action_items(meetings, notes, follow_up_at)
    held = [m for m in meetings if m["state"] == "held"]
    content: dict[str, Any] = {
        "cycle_id": cycle["id"],
        "programme_id": cycle["programme_id"],
        "title": cycle["title"],
        "generated_at": generated_at.isoformat(),
        "follow_up_at": follow_up_at.isoformat(),
        "summary": {
            "meetings_planned": len(meetings),
            "meetings_held": len(held),
            "meetings_cancelled": sum(1 for m in meetings if m["state"] == "cancelled"),
            "notes": len(notes),
            "organisations": sorted({n["author_organisation"] for n in notes}),
            "languages": sorted({n["language"] for n in notes}),
        },
        "meetings": [
            {
                "meeting_id": m["id"],
                "kind": m["kind"],
                "title": m["title"],
                "host": m.get("host"),
                "state": m["state"],
                "starts_at": _iso(m["starts_at"]),
                "held_at": _iso(m.get("held_at")),
                "topics": m.get("topics") or [],
                "note_count": len(by_meeting.get(m["id"], [])),
                "theme_ids": m.get("theme_ids") or [],
                "escalated": m.get("escalated_at") is not None,
            }
            for m in meetings
        ],
        "themes": [],  # filled by the miner's enrichment
        "practices": [],
        "action_items": actions,
    }
    md = [f"# Wrap-up: {cycle['title']}", ""]
    s = content["summary"]
    md.append(
        f"{s['meetings_held']} of {s['meetings_planned']} meetings held, "
        f"{s['notes']} notes from {len(s['organisations'])} organisations "
        f"in {len(s['languages'])} languages."
    )
    md += ["", "## Meetings", ""]
    for m in content["meetings"]:
        host = f", hosted by {m['host']}" if m["host"] else ""
        flag = " (notes overdue)" if m["escalated"] else ""
        md.append(
            f"- **{m['title'] or m['meeting_id']}** ({m['kind']}{host}): {m['state']}, "
            f"{m['note_count']} notes{flag}"
        )
    md += ["", "## Open action items", ""]
    if actions:
        md += [f"- [ ] {a['owner']}: {a['what']} (by {a['due_at'][:10]})" for a in actions]
    else:
        md.append("None recorded.")
    md += ["", f"Follow-up check: {follow_up_at.date().isoformat()}.", ""]
    return ReportContent(content=content, markdown="\n".join(md), action_items=actions)


def report_id_for(cycle_id: str) -> str:
    return f"{cycle_id}-wrapup"


class ReportActivities:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    @activity.defn(name=BUILD_WRAPUP_REPORT)
    async def build_wrapup_report(self, inp: WrapUpInput) -> WrapUpOutput:
        async with self.pool.connection() as conn:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute("SELECT * FROM cycles WHERE id = %s", (inp.cycle_id,))
                cycle = await cur.fetchone()
                await cur.execute(
                    "SELECT * FROM meetings WHERE cycle_id = %s ORDER BY starts_at, id",
                    (inp.cycle_id,),
                )
                meetings = list(await cur.fetchall())
                await cur.execute(
                    "SELECT * FROM notes WHERE cycle_id = %s ORDER BY submitted_at, id",
                    (inp.cycle_id,),
                )
                notes = list(await cur.fetchall())
            if cycle is None:
                raise RuntimeError(f"cycle {inp.cycle_id!r} has no read model yet")
            report = build_report_content(
                cycle, meetings, notes, generated_at=inp.occurred_at, follow_up_at=inp.follow_up_at
            )
            # Themes, practices with sources, recommendations by audience, changes
            # since the previous cycle: the mining side of the report.
            from peerlearn.wrapup import enrich_wrapup

            report.content, report.markdown = await enrich_wrapup(
                conn, report.content, report.markdown
            )
            rid = report_id_for(inp.cycle_id)
            async with conn.transaction():
                res = await eventstore.append(
                    conn,
                    stream_id=inp.cycle_id,
                    type="WrapUpPublished",
                    payload={
                        "report_id": rid,
                        "report": report.content,
                        "markdown": report.markdown,
                        "action_items": report.action_items,
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
