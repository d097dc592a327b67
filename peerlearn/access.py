"""Who may read and change what: principals, roles and the domain errors of access.

This is the bottom layer's view of authorisation, so the worker, the report
builder and the read models can check a grant without loading FastAPI. The
errors here are plain exceptions with a message; ``api/problems.py`` maps each
class to its HTTP status (problem+json) in one place, and nothing below
``api/`` knows about HTTP.

A programme outside a principal's grant is reported as :class:`NotFound`,
worded exactly like an unknown id, so a key cannot learn which programme or
cycle ids exist elsewhere (nor their names).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AccessError(Exception):
    """Base of the domain errors raised by the shared layer (message in ``str()``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AccessError):
    """No such thing, or nothing the caller may see (the two are indistinguishable)."""


class Forbidden(AccessError):
    """The caller is known and sees the thing, but its role may not do this."""


class BadRequest(AccessError):
    """A request value the caller cannot have got from us (e.g. a tampered cursor)."""


class Invalid(AccessError):
    """A well-formed request that breaks a domain rule (HTTP 422)."""


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    analyst = "analyst"
    partner = "partner"


def programme_not_found(programme_id: str) -> NotFound:
    """The one wording for an unknown programme and one outside the grant."""
    return NotFound(f"programme {programme_id!r} not found")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a role, a grant of programmes, and for partner
    keys the organisation they speak for."""

    key_id: str
    role: Role
    programmes: frozenset[str] = field(default_factory=frozenset)  # ignored for admin
    organisation: str | None = None  # partner keys only
    expires_at: datetime | None = None
    person: str | None = None  # a partner key of one named person: signs its notes

    @property
    def all_programmes(self) -> bool:
        return self.role is Role.admin

    def can_see(self, programme_id: str) -> bool:
        return self.all_programmes or programme_id in self.programmes

    def programme_filter(self) -> list[str] | None:
        """None means no restriction (admin); otherwise the granted ids."""
        return None if self.all_programmes else sorted(self.programmes)

    def check_programme(self, programme_id: str) -> None:
        """Raise :class:`NotFound` outside the grant, worded as for an unknown id."""
        if not self.can_see(programme_id):
            raise programme_not_found(programme_id)

    def check_cycle(self, cycle_id: str, programme_id: str) -> None:
        """A cycle of a programme outside the grant is :class:`NotFound`, worded
        as for an unknown cycle: its programme is never named."""
        if not self.can_see(programme_id):
            raise NotFound(f"cycle {cycle_id!r} not found")

    @property
    def notes_organisation(self) -> str | None:
        """The only author organisation whose raw notes this key may read.

        Partners are the learners: in their programmes they read the mined
        output (themes, practices, search, the theme map, reports, exports),
        but of the raw notes only their own organisation's. None: every note
        in the grant (managers, analysts, admins)."""
        return self.organisation if self.role is Role.partner else None

    def may_read_note_of(self, organisation_id: str) -> bool:
        own = self.notes_organisation
        return own is None or own == organisation_id

    def check_organisation(
        self, organisation_id: str, partners: Container[str] | None = None
    ) -> None:
        """A partner key may only speak for its own organisation.

        ``partners`` (optional) are the partners of the programme concerned:
        the organisation must be one of them. Other roles pass (their programme
        grant is checked separately).
        """
        if self.role is not Role.partner:
            return
        if organisation_id != self.organisation:
            raise Forbidden(
                f"this partner key speaks for organisation {self.organisation!r},"
                f" not {organisation_id!r}"
            )
        if partners is not None and organisation_id not in partners:
            raise Forbidden(f"organisation {organisation_id!r} is not a partner of this programme")


SYSTEM = Principal(key_id="system", role=Role.admin)
"""The worker's own principal (reports built by the cycle engine see everything)."""
