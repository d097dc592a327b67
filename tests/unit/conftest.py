"""The fast tier: pure functions only (no PostgreSQL, Temporal or model).

Nothing here starts a server. The suite-wide fixtures of ``tests/conftest.py``
are all lazy (requested by name, none autouse), so a unit test never waits
for them; ``make test-fast`` runs this folder alone in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def t0() -> datetime:
    """A fixed, timezone-aware instant: unit tests never read the clock."""
    return T0
