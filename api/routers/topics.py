"""/v1/cycles/{c}/meetings/{m}/topics: partners vote on the meeting's focus topics.

Issue 13: the manager proposes topics for a meeting; each partner organisation
casts one vote, which it may change until the meeting's preparation pack goes
out; the manager sees the counts (partners see the ballot and their own vote,
so nobody follows the crowd). The winners become the meeting's focus topics:
set by the manager (``POST .../topics/focus``) or, at the latest, frozen when
the preparation pack is sent (the projector of ``PreparationPackSent``), so no
workflow change is needed. Everything is an event on the cycle's stream.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, status
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, field_validator

from api import cycle_ops
from api.auth import CurrentPrincipal, Principal, Role
from api.deps import OptionalTemporal, Pool
from api.problems import Problem
from peerlearn import eventstore
from peerlearn.events import EventType
from peerlearn.projections import tally, winning_topics

router = APIRouter(prefix="/v1/cycles/{cycle_id}/meetings/{meeting_id}/topics", tags=["meetings"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Role may not do this, or a partner key votes for another organisation"},
    404: {"description": "Unknown cycle or meeting, or no topics proposed yet"},
    409: {"description": "The meeting is no longer scheduled or its preparation pack is out"},
    422: {"description": "Invalid topics, or a topic not on the ballot"},
}
MAX_TOPICS = 12


def _clean(topics: list[str]) -> list[str]:
    out: list[str] = []
    for t in topics:
        t = " ".join(t.split())
        if not t:
            raise ValueError("a topic must not be blank")
        if t.casefold() in {o.casefold() for o in out}:
            raise ValueError(f"topic {t!r} is proposed twice")
        out.append(t)
    return out


class TopicsIn(BaseModel):
    topics: list[str] = Field(min_length=1, max_length=MAX_TOPICS)

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        if any(len(t) > 200 for t in v):
            raise ValueError("a topic has at most 200 characters")
        return _clean(v)


class VoteIn(BaseModel):
    topic: str = Field(min_length=1, max_length=200)
    organisation: str | None = Field(
        default=None, description="Managers/admins vote on a partner's behalf; partners omit it"
    )


class FocusIn(BaseModel):
    topics: list[str] | None = Field(
        default=None, max_length=MAX_TOPICS, description="Default: the vote's winners"
    )


class TopicCount(BaseModel):
    topic: str
    votes: int | None  # None for partner keys: counts are the manager's


class TopicsOut(BaseModel):
    cycle_id: str
    meeting_id: str
    topics: list[TopicCount]
    voters: int | None
    my_vote: str | None
    open: bool
    focus_topics: list[str]
    focus_source: str | None


def _check_open(m: dict[str, Any], meeting_id: str) -> None:
    if m["state"] != "scheduled":
        raise Problem(409, f"meeting {meeting_id!r} is {m['state']}: topics are chosen before it")
    if m["prep_sent_at"] is not None:
        raise Problem(409, f"the preparation pack of {meeting_id!r} is out: the vote is closed")


async def _state(pool: Pool, cycle_id: str, meeting_id: str, p: Principal) -> dict[str, Any]:
    m = await cycle_ops.meeting_row(pool, cycle_id, meeting_id)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT topics FROM meeting_topic_proposals WHERE cycle_id = %s AND meeting_id = %s",
            (cycle_id, meeting_id),
        )
        ballot_row = await cur.fetchone()
        await cur.execute(
            "SELECT organisation, topic FROM topic_votes WHERE cycle_id = %s AND meeting_id = %s",
            (cycle_id, meeting_id),
        )
        votes = await cur.fetchall()
        await cur.execute(
            "SELECT topics, source FROM meeting_focus_topics"
            " WHERE cycle_id = %s AND meeting_id = %s",
            (cycle_id, meeting_id),
        )
        focus = await cur.fetchone()
    if ballot_row is None and focus is None:
        raise Problem(404, f"no topics proposed for meeting {meeting_id!r} yet")
    ballot: list[str] = list(ballot_row["topics"]) if ballot_row else []
    counts = tally(ballot, [v["topic"] for v in votes])
    sees_counts = p.role is not Role.partner
    mine = next((v["topic"] for v in votes if v["organisation"] == p.organisation), None)
    return {
        "cycle_id": cycle_id,
        "meeting_id": meeting_id,
        "topics": [{"topic": t, "votes": counts[t] if sees_counts else None} for t in ballot],
        "voters": len(votes) if sees_counts else None,
        "my_vote": mine if p.role is Role.partner else None,
        "open": m["state"] == "scheduled" and m["prep_sent_at"] is None and bool(ballot),
        "focus_topics": list(focus["topics"]) if focus else [],
        "focus_source": focus["source"] if focus else None,
    }


async def _append(pool: Pool, cycle_id: str, type_: EventType, payload: dict[str, Any]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=cycle_id,
            type=type_,
            payload=payload,
            idempotency_key=f"{cycle_id}:{type_.value}:{uuid.uuid4().hex}",
            occurred_at=datetime.now(UTC),
        )


def _manager(p: Principal) -> None:
    if p.role not in (Role.admin, Role.manager):
        raise Problem(403, f"role {p.role.value!r} may not propose or set topics")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TopicsOut, responses=_ERRORS)
async def propose_topics(
    cycle_id: str,
    meeting_id: str,
    body: TopicsIn,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """The manager's ballot (replaces an earlier one; votes for dropped topics lapse)."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    _manager(principal)
    _check_open(await cycle_ops.meeting_row(pool, cycle_id, meeting_id), meeting_id)
    await _append(
        pool,
        cycle_id,
        EventType.TOPICS_PROPOSED,
        {"meeting_id": meeting_id, "topics": body.topics, "by": principal.key_id},
    )
    return await _state(pool, cycle_id, meeting_id, principal)


@router.get("", response_model=TopicsOut, responses=_ERRORS)
async def get_topics(
    cycle_id: str,
    meeting_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """The ballot; counts for managers, analysts and admins, one's own vote for partners."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    return await _state(pool, cycle_id, meeting_id, principal)


@router.post("/votes", response_model=TopicsOut, responses=_ERRORS)
async def vote(
    cycle_id: str,
    meeting_id: str,
    body: VoteIn,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """One vote per partner organisation; voting again replaces the earlier vote."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    if principal.role is Role.partner:
        org = principal.organisation
    elif principal.role in (Role.admin, Role.manager):
        org = body.organisation
    else:
        raise Problem(403, f"role {principal.role.value!r} may not vote")
    if not org:
        raise Problem(422, "organisation is required when voting on a partner's behalf")
    m = await cycle_ops.meeting_row(pool, cycle_id, meeting_id)
    principal.check_organisation(org, m["partners"] or [])
    if org not in (m["partners"] or []):
        raise Problem(422, f"{org!r} is not a partner of this cycle")
    _check_open(m, meeting_id)
    current = await _state(pool, cycle_id, meeting_id, principal)
    ballot = [t["topic"] for t in current["topics"]]
    wanted = " ".join(body.topic.split()).casefold()
    topic = next((t for t in ballot if t.casefold() == wanted), None)
    if topic is None:
        raise Problem(422, f"topic {body.topic!r} is not on the ballot: {ballot}")
    await _append(
        pool,
        cycle_id,
        EventType.TOPIC_VOTED,
        {"meeting_id": meeting_id, "organisation": org, "topic": topic, "by": principal.key_id},
    )
    return await _state(pool, cycle_id, meeting_id, principal)


@router.post("/focus", response_model=TopicsOut, responses=_ERRORS)
async def set_focus_topics(
    cycle_id: str,
    meeting_id: str,
    body: FocusIn,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
) -> dict[str, Any]:
    """Close the vote: the winners (or the manager's own choice) become the focus topics."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    _manager(principal)
    _check_open(await cycle_ops.meeting_row(pool, cycle_id, meeting_id), meeting_id)
    current = await _state(pool, cycle_id, meeting_id, principal)
    counts = {t["topic"]: int(t["votes"] or 0) for t in current["topics"]}
    if body.topics is not None:
        try:
            topics = _clean(body.topics)
        except ValueError as exc:
            raise Problem(422, str(exc)) from exc
    else:
        topics = winning_topics(list(counts), counts)
    if not topics:
        raise Problem(422, "no votes yet: name the focus topics explicitly")
    await _append(
        pool,
        cycle_id,
        EventType.FOCUS_TOPICS_SET,
        {"meeting_id": meeting_id, "topics": topics, "counts": counts, "by": principal.key_id},
    )
    return await _state(pool, cycle_id, meeting_id, principal)
