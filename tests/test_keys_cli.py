"""`peerlearn keys create` refuses keys that could never be right (issue 10):
a partner key for an organisation that is not a partner of the granted
programme, and a key that expires in the past (or "in 0 days", which used to
mean never). Against a real PostgreSQL, through the real CLI process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from peerlearn import db, keys

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def conninfo(database_url: str) -> str:
    db.migrate(database_url)
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for pid, partners in (("kp-a", ["org-a", "org-b"]), ("kp-b", ["org-c"])):
            conn.execute(
                "INSERT INTO programmes (id, name, time_zone, partners, created_at, updated_at,"
                " version) VALUES (%s, %s, 'UTC', %s, %s, %s, 1) ON CONFLICT (id) DO NOTHING",
                (pid, pid, Jsonb([{"id": p, "name": p} for p in partners]), now, now),
            )
    return database_url


def cli(conninfo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": conninfo},
        cwd=REPO,
        timeout=120,
    )


def key_count(conninfo: str) -> int:
    return len(keys.list_keys(conninfo))


def test_partner_key_for_a_partner_of_the_programme(conninfo: str) -> None:
    out = cli(conninfo, "--role", "partner", "--programme", "kp-a", "--organisation", "org-b")
    assert out.returncode == 0, out.stderr
    assert "key:" in out.stdout


def test_partner_key_of_a_named_person(conninfo: str) -> None:
    out = cli(conninfo, "--role", "partner", "--programme", "kp-a", "--organisation", "org-b",
              "--person", "  Anna   Berg ")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "person:  Anna Berg" in out.stdout
    [row] = [k for k in keys.list_keys(conninfo) if k["person"]]
    assert row["person"] == "Anna Berg" and row["organisation"] == "org-b"
    before = key_count(conninfo)
    for args, why in (
        (["--role", "analyst", "--programme", "kp-a", "--person", "Anna"], "partner keys"),
        (["--role", "partner", "--programme", "kp-a", "--organisation", "org-b",
          "--person", "A" * 201], "at most 200"),
    ):  # fmt: skip
        out = cli(conninfo, *args)
        assert out.returncode != 0 and why in out.stderr, out.stderr
    assert key_count(conninfo) == before


@pytest.mark.parametrize(
    ("programmes", "organisation", "why"),
    [
        (["kp-a"], "org-c", "not a partner of programme 'kp-a'"),  # partner of kp-b only
        (["kp-a"], "nobody", "not a partner of programme 'kp-a'"),
        (["kp-a", "kp-b"], "org-a", "not a partner of programme 'kp-b'"),  # every programme
        (["no-such-programme"], "org-a", "programme 'no-such-programme' does not exist"),
    ],
)
def test_partner_key_outside_the_programme_is_refused(
    conninfo: str, programmes: list[str], organisation: str, why: str
) -> None:
    before = key_count(conninfo)
    args = [a for p in programmes for a in ("--programme", p)]
    out = cli(conninfo, "--role", "partner", *args, "--organisation", organisation)
    assert out.returncode == 1, out.stdout
    assert why in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert key_count(conninfo) == before, "a refused key was stored anyway"


@pytest.mark.parametrize("days", ["-5", "0", "nan", "inf", "1e9"])
def test_expiry_must_be_a_positive_bounded_span(conninfo: str, days: str) -> None:
    before = key_count(conninfo)
    out = cli(conninfo, "--role", "analyst", "--programme", "kp-a", "--expires-in-days", days)
    assert out.returncode == 1, out.stdout
    assert "--expires-in-days" in out.stderr
    assert key_count(conninfo) == before


def test_create_key_refuses_a_past_expiry_for_every_caller(conninfo: str) -> None:
    with pytest.raises(keys.KeySpecError, match="positive"):
        keys.create_key(conninfo, "analyst", ["kp-a"], expires_in_days=-5)
    key_id, _ = keys.create_key(conninfo, "analyst", ["kp-a"], expires_in_days=0.5)
    row = next(r for r in keys.list_keys(conninfo) if r["id"] == key_id)
    assert row["expires_at"] is not None and row["expires_at"] > datetime.now(UTC)
