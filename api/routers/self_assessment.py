"""/v1/cycles/{c}/meetings/{m}/self-assessment: the host answers its programme's
questionnaire before the visit; the peers read it (and get it in their
preparation pack e-mail).

Who may answer: the host organisation's partner key, or a manager/admin on its
behalf. Analysts read only. Answers are accepted while the meeting is still
scheduled; a new submission replaces the previous one (both stay in the log).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from psycopg.rows import dict_row

from api import cycle_ops
from api.auth import CurrentPrincipal, Role
from api.deps import OptionalTemporal, Pool
from api.problems import Problem
from api.schemas_cycles import SelfAssessmentIn, SelfAssessmentOut
from peerlearn import eventstore, privacy
from peerlearn import self_assessment as sa
from peerlearn.events import EventType
from peerlearn.mining import store

router = APIRouter(
    prefix="/v1/cycles/{cycle_id}/meetings/{meeting_id}/self-assessment", tags=["meetings"]
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not the host's key (partners) or a read-only role"},
    404: {"description": "Unknown cycle or meeting, or no self-assessment yet"},
    409: {"description": "The meeting has no host, or is no longer scheduled"},
    422: {"description": "An answer does not fit its question"},
}


@router.put("", response_model=SelfAssessmentOut, responses=_ERRORS)
async def submit_self_assessment(
    cycle_id: str,
    meeting_id: str,
    body: SelfAssessmentIn,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """The host's answers (replacing an earlier submission for this meeting)."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    if principal.role not in (Role.admin, Role.manager, Role.partner):
        raise Problem(403, f"role {principal.role.value!r} may read a self-assessment, not submit")
    m = await cycle_ops.meeting_row(pool, cycle_id, meeting_id)
    if not m["host"]:
        raise Problem(409, f"meeting {meeting_id!r} has no host to assess itself")
    principal.check_organisation(m["host"])  # partners: only the host's own key
    if m["state"] != "scheduled":
        raise Problem(409, f"meeting {meeting_id!r} is {m['state']}: answers come before it")
    answers = sa.validate_answers(m["questions"] or [], [a.model_dump() for a in body.answers])
    async with pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=cycle_id,
            type=EventType.SELF_ASSESSMENT_SUBMITTED,
            payload={
                "meeting_id": meeting_id,
                "host": m["host"],
                "language": body.language,
                "answers": answers,
                "submitted_by": principal.key_id,
            },
            idempotency_key=f"{cycle_id}:self-assessment:{meeting_id}:{uuid.uuid4().hex}",
            occurred_at=datetime.now(UTC),
        )
        rows = await sa.load(conn, cycle_id, meeting_id)
        # the previous submission's mined statements leave themes and search;
        # the note reconciliation mines this one's free text (issue 13)
        current = sa.note_id(cycle_id, meeting_id, rows[0]["version"])
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT DISTINCT note_id FROM statements"
                " WHERE starts_with(note_id, %s) AND note_id <> %s",
                (f"{sa.NOTE_PREFIX}{cycle_id}:{meeting_id}:", current),
            )
            stale = [str(r["note_id"]) for r in await cur.fetchall()]
        themes = await privacy.forget_statements(conn, stale)
        if themes:
            await store.refresh_practices(conn, themes)
    return rows[0]


@router.get("", response_model=SelfAssessmentOut, responses=_ERRORS)
async def get_self_assessment(
    cycle_id: str,
    meeting_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """The host's latest answers, each with its question."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    async with pool.connection() as conn:
        rows = await sa.load(conn, cycle_id, meeting_id)
    if not rows:
        raise Problem(404, f"no self-assessment for meeting {meeting_id!r} yet")
    return rows[0]
