"""GET /v1/me: what the calling key is, so the page shows only what it may do.

The /ui app decides its tabs from this answer (managers plan and steer
cycles, partners submit their organisation's notes, analysts read); the
server still checks every request, so this is a convenience, never a grant."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import CurrentPrincipal

router = APIRouter(prefix="/v1/me", tags=["auth"])


class MeOut(BaseModel):
    key_id: str
    role: str = Field(examples=["manager"])
    programmes: list[str] | None = Field(description="Granted programme ids; null = all (admin).")
    organisation: str | None = Field(description="Partner keys: the organisation they speak for.")
    person: str | None = Field(
        default=None, description="Partner keys of one named person: who signs their notes."
    )


@router.get("", response_model=MeOut)
async def whoami(principal: CurrentPrincipal) -> MeOut:
    return MeOut(
        key_id=principal.key_id,
        role=principal.role.value,
        programmes=principal.programme_filter(),
        organisation=principal.organisation,
        person=principal.person,
    )
