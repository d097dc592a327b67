"""/v1/cycles/{c}/meetings/{m}/feedback: the peers' feedback to a site visit's host.

Compiled once, when the visit's note window closed and the host's e-mail went
out (``peerlearn/feedback.py``); the host acknowledges it here. Readable by
whoever may read the cycle; acknowledged by the host's partner key or a manager.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api import cycle_ops
from api.auth import CurrentPrincipal, Principal, Role
from api.deps import OptionalTemporal, Pool
from api.problems import Problem
from peerlearn import eventstore, feedback
from peerlearn.events import EventType
from peerlearn.readside import glosses

router = APIRouter(prefix="/v1/cycles/{cycle_id}/meetings/{meeting_id}/feedback", tags=["meetings"])


class Gloss(BaseModel):
    """The most similar English statement of the same theme (not a translation)."""

    english_statement_id: str
    english_text: str
    similarity: float
    label: str


class FeedbackItem(BaseModel):
    statement_id: str
    kind: str
    group: str
    organisation: str | None
    language: str
    text: str
    gloss: Gloss | None = None


class FeedbackOut(BaseModel):
    cycle_id: str
    meeting_id: str
    host: str
    compiled_at: datetime
    strengths: list[FeedbackItem]
    challenges: list[FeedbackItem]
    lessons: list[FeedbackItem]
    recommendations: list[FeedbackItem]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledgement_note: str | None


class AcknowledgeIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


async def _summary(
    pool: Pool, cycle_id: str, meeting_id: str, principal: Principal
) -> dict[str, Any]:
    """The stored summary; non-English statements get an English gloss the
    caller may read (issue 13: feedback "with glosses"), looked up at read
    time because glosses follow re-mining while the summary stays as sent."""
    async with pool.connection() as conn:
        rows = await feedback.summaries(conn, cycle_id, meeting_id)
        if not rows:
            raise Problem(
                404, f"no feedback for meeting {meeting_id!r} yet (after its note window)"
            )
        items = [dict(i) for i in rows[0].pop("items")]
        found = await glosses.glosses_for(
            conn, principal, [i["statement_id"] for i in items if i.get("language") != "en"]
        )
    glosses.attach(items, found, "statement_id")
    return {**rows[0], **feedback.grouped(items)}


@router.get("", response_model=FeedbackOut, responses={404: {}})
async def get_feedback(
    cycle_id: str,
    meeting_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """The compiled feedback, by section, each statement in its own language."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    return await _summary(pool, cycle_id, meeting_id, principal)


@router.post("/acknowledge", response_model=FeedbackOut, responses={403: {}, 404: {}})
async def acknowledge_feedback(
    cycle_id: str,
    meeting_id: str,
    body: AcknowledgeIn,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """The host confirms it received the feedback (an event on the cycle's stream)."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    current = await _summary(pool, cycle_id, meeting_id, principal)
    if principal.role not in (Role.admin, Role.manager, Role.partner):
        raise Problem(403, f"role {principal.role.value!r} may read feedback, not acknowledge it")
    principal.check_organisation(current["host"])  # partners: the host's own key only
    async with pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=cycle_id,
            type=EventType.FEEDBACK_ACKNOWLEDGED,
            payload={"meeting_id": meeting_id, "note": body.note, "by": principal.key_id},
            idempotency_key=f"{cycle_id}:feedback-ack:{meeting_id}:{uuid.uuid4().hex}",
            occurred_at=datetime.now(UTC),
        )
    return await _summary(pool, cycle_id, meeting_id, principal)
