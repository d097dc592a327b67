"""/v1/cycles/{c}/action-items: the host's action plan (issue 13).

Each item answers (optionally) one of the peers' recommendations, which
``/suggestions`` lists from the mined statements in any language. Partner keys
write only their own organisation's items; managers and admins write any;
analysts read. Every change is an event on the cycle's stream, so the progress
history is the log's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from psycopg.rows import dict_row
from pydantic import AwareDatetime, BaseModel, Field

from api import cycle_ops
from api.auth import CurrentPrincipal, Principal, Role
from api.deps import OptionalTemporal, Pool
from api.problems import Problem
from api.schemas_cycles import ID_PATTERN
from peerlearn import action_plan, eventstore
from peerlearn.events import EventType

router = APIRouter(prefix="/v1/cycles/{cycle_id}/action-items", tags=["action plans"])

Status = Literal["open", "in_progress", "done", "dropped"]


class Recommendation(BaseModel):
    statement_id: str
    meeting_id: str | None
    organisation: str | None = Field(description="The peer that recommended it.")
    language: str
    text: str | None = Field(description="The peer's words; null once its note was erased.")


class Suggestion(Recommendation):
    host: str | None
    action_item_ids: list[str] = Field(description="Items that already answer it.")


class SuggestionPage(BaseModel):
    items: list[Suggestion]


class ActionItemIn(BaseModel):
    owner: str = Field(pattern=ID_PATTERN, description="The partner that acts.")
    what: str = Field(min_length=1, max_length=2000)
    due_at: AwareDatetime | None = None
    meeting_id: str | None = Field(default=None, pattern=ID_PATTERN)
    recommendation_statement_id: str | None = Field(
        default=None, max_length=200, description="The recommendation this item answers."
    )


class ActionItemPatch(BaseModel):
    status: Status | None = None
    due_at: AwareDatetime | None = None
    owner: str | None = Field(default=None, pattern=ID_PATTERN)
    note: str | None = Field(default=None, min_length=1, max_length=2000)


class Progress(BaseModel):
    at: datetime
    by: str | None = None
    status: str | None = None
    note: str | None = None
    due_at: str | None = None
    owner: str | None = None


class ActionItemOut(BaseModel):
    id: str
    owner: str
    what: str
    due_at: datetime | None
    status: str
    overdue: bool
    meeting_id: str | None
    recommendation: Recommendation | None
    progress: list[Progress]
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class ActionItemPage(BaseModel):
    items: list[ActionItemOut]


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "overdue": action_plan.overdue(row, datetime.now(UTC))}


def _writer(principal: Principal, owner: str) -> None:
    if principal.role not in (Role.admin, Role.manager, Role.partner):
        raise Problem(403, f"role {principal.role.value!r} may read action plans, not change them")
    principal.check_organisation(owner)  # partners: their own organisation's items only


async def _append(pool: Pool, cycle_id: str, type_: EventType, payload: dict[str, Any]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=cycle_id,
            type=type_,
            payload=payload,
            idempotency_key=f"{cycle_id}:action-item:{uuid.uuid4().hex}",
            occurred_at=datetime.now(UTC),
        )


@router.get("", response_model=ActionItemPage)
async def list_action_items(
    cycle_id: str, pool: Pool, principal: CurrentPrincipal, temporal: OptionalTemporal
) -> dict[str, Any]:
    """The cycle's action plan: each item with the recommendation it answers and its progress."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    async with pool.connection() as conn:
        rows = await action_plan.items(conn, cycle_id)
    return {"items": [_out(r) for r in rows]}


@router.get("/suggestions", response_model=SuggestionPage)
async def recommendation_suggestions(
    cycle_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
    meeting_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """The peers' recommendations (mined statements of kind ``recommendation``,
    any language) to turn into items; ``action_item_ids`` shows those answered."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    async with pool.connection() as conn:
        return {"items": await action_plan.suggestions(conn, cycle_id, meeting_id)}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ActionItemOut)
async def add_action_item(
    cycle_id: str,
    body: ActionItemIn,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """Add an item to the action plan (optionally answering a recommendation)."""
    row = await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    _writer(principal, body.owner)
    if body.owner not in (row.get("partners") or []):
        raise Problem(422, f"owner {body.owner!r} is not a partner of this cycle")
    meeting_id = body.meeting_id
    rec: dict[str, Any] | None = None
    async with pool.connection() as conn:
        if body.recommendation_statement_id:
            rec = await action_plan.recommendation(conn, cycle_id, body.recommendation_statement_id)
            meeting_id = meeting_id or rec["meeting_id"]
        if meeting_id is not None:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "SELECT 1 FROM meetings WHERE cycle_id = %s AND id = %s", (cycle_id, meeting_id)
                )
                if await cur.fetchone() is None:
                    raise Problem(422, f"meeting {meeting_id!r} is not in this cycle")
    item_id = "ai-" + uuid.uuid4().hex[:10]
    await _append(
        pool,
        cycle_id,
        EventType.ACTION_ITEM_ADDED,
        {
            "item_id": item_id,
            "owner": body.owner,
            "what": body.what,
            "due_at": body.due_at.astimezone(UTC).isoformat() if body.due_at else None,
            "meeting_id": meeting_id,
            "recommendation": rec,
            "by": principal.key_id,
        },
    )
    async with pool.connection() as conn:
        return _out(await action_plan.item(conn, cycle_id, item_id))


@router.patch("/{item_id}", response_model=ActionItemOut)
async def update_action_item(
    cycle_id: str,
    item_id: str,
    body: ActionItemPatch,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """Change the status, due date or owner and/or add a progress note."""
    row = await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    async with pool.connection() as conn:
        current = await action_plan.item(conn, cycle_id, item_id)
    _writer(principal, current["owner"])
    changes = body.model_dump(exclude_unset=True, mode="json")
    if not changes:
        raise Problem(422, "send at least one of status, due_at, owner, note")
    if "status" in changes:
        action_plan.check_transition(current["status"], changes["status"])
    if "owner" in changes:
        _writer(principal, changes["owner"])
        if changes["owner"] not in (row.get("partners") or []):
            raise Problem(422, f"owner {changes['owner']!r} is not a partner of this cycle")
    await _append(
        pool,
        cycle_id,
        EventType.ACTION_ITEM_UPDATED,
        {"item_id": item_id, **changes, "by": principal.key_id},
    )
    async with pool.connection() as conn:
        return _out(await action_plan.item(conn, cycle_id, item_id))


programme_router = APIRouter(
    prefix="/v1/programmes/{programme_id}/action-plan", tags=["action plans"]
)


class HostPath(BaseModel):
    host: str = Field(description="The partner (host of visits, owner of items).")
    recommendations: int = Field(description="Peers' recommendations on visits it hosted.")
    answered: int = Field(description="Of those, answered by an action item.")
    items: dict[str, int] = Field(description="Its action items by status.")
    done: int


class ProgrammePath(BaseModel):
    programme_id: str
    hosts: list[HostPath]
    total: HostPath


@programme_router.get("", response_model=ProgrammePath, responses={404: {}})
async def programme_action_plan(
    programme_id: str, pool: Pool, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Recommendation -> action -> done, per host and for the whole programme."""
    principal.check_programme(programme_id)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM programmes WHERE id = %s", (programme_id,))
        if await cur.fetchone() is None:
            raise Problem(404, f"programme {programme_id!r} not found")
        hosts = await action_plan.programme_path(conn, programme_id)
    total: dict[str, Any] = {
        "host": "*",
        "recommendations": 0,
        "answered": 0,
        "items": {},
        "done": 0,
    }
    for h in hosts:
        for k in ("recommendations", "answered", "done"):
            total[k] += h[k]
        for status_, n in h["items"].items():
            total["items"][status_] = total["items"].get(status_, 0) + n
    return {"programme_id": programme_id, "hosts": hosts, "total": total}
