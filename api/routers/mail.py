"""/v1/mail: the messages the embedded mail catcher received (admins only).

With no SMTP server configured, ``peerlearn run`` catches every e-mail the
cycles send (``peerlearn/mailcatcher.py``), so an administrator can read what
partners would have received: invitations with their calendar parts,
reminders, escalations. Mail is personal data across programmes, hence admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.auth import Principal, Role, require
from api.deps import Pool
from api.problems import Problem
from peerlearn import mailcatcher

router = APIRouter(prefix="/v1/mail", tags=["mail"])
MAX_ID = 2**63 - 1  # caught_mail.id is a bigint


class CaughtMail(BaseModel):
    id: int
    message_id: str | None
    mail_from: str
    rcpt_to: list[str]
    to: str = Field(description="The To header (name and address).")
    subject: str
    received_at: datetime
    copies: int = Field(description="Receipts with this Message-ID (more than 1: a re-send).")
    kind: str | None = Field(description="The outbox kind (invitation, reminder, ...).")
    language: str | None
    calendar_method: str | None = Field(description="REQUEST or CANCEL when a calendar part.")


class CaughtMailPage(BaseModel):
    items: list[CaughtMail]
    next_before: int | None = Field(description="Pass as ?before= for older messages.")


class CaughtMailDetail(CaughtMail):
    date: str | None
    text: str
    calendar: str | None
    attachments: list[str]


@router.get("", response_model=CaughtMailPage)
async def list_mail(
    pool: Pool,
    principal: Principal = require(Role.admin),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Messages older than this id.")
    ] = None,
) -> dict[str, Any]:
    """Caught messages, newest first."""
    async with pool.connection() as conn:
        items = await mailcatcher.list_caught(conn, limit=limit, before=before)
    nxt = items[-1]["id"] if len(items) == limit else None
    return {"items": items, "next_before": nxt}


@router.get("/{mail_id}", response_model=CaughtMailDetail, responses={404: {}})
async def get_mail(
    mail_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    pool: Pool,
    principal: Principal = require(Role.admin),
) -> dict[str, Any]:
    """One caught message: its text and its calendar part."""
    async with pool.connection() as conn:
        row = await mailcatcher.caught(conn, mail_id)
    if row is None:
        raise Problem(404, f"no caught mail {mail_id}")
    return row
