"""Who is calling: API keys carrying a role and a grant of programmes.

Routers depend on :data:`CurrentPrincipal` (or :func:`require`) and filter every
list and search by :meth:`Principal.programme_filter`, so nothing leaks across
programmes. Key storage and verification live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from api.problems import Problem


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    analyst = "analyst"
    partner = "partner"


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    programmes: frozenset[str] = field(default_factory=frozenset)  # empty + admin = all
    organisation: str | None = None  # partner keys only

    @property
    def all_programmes(self) -> bool:
        return self.role is Role.admin

    def can_see(self, programme_id: str) -> bool:
        return self.all_programmes or programme_id in self.programmes

    def programme_filter(self) -> list[str] | None:
        """None means no restriction (admin); otherwise the granted ids."""
        return None if self.all_programmes else sorted(self.programmes)

    def check_programme(self, programme_id: str) -> None:
        if not self.can_see(programme_id):
            raise Problem(403, f"this key has no grant for programme {programme_id!r}")


async def _principal(request: Request) -> Principal:
    # Placeholder until key verification lands (issue 6): everything is admin.
    return Principal(key_id="dev", role=Role.admin)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """Dependency factory: the caller must hold one of ``roles`` (admin always may)."""

    async def _dep(principal: CurrentPrincipal) -> Principal:
        if principal.role is not Role.admin and principal.role not in roles:
            raise Problem(
                403,
                f"role {principal.role.value!r} may not do this; needs one of "
                + ", ".join(r.value for r in roles),
            )
        return principal

    return Depends(_dep)
