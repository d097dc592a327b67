"""Issue 13: the wrap-up report shows recommendation -> action -> done per host.

The peers' recommendations on a host's visit (as the miner stored them), the
host's action items through the API (one answers a recommendation and is
done), then the cycle's report (the same model the wrap-up activity renders)
has one row per host and a total, in Markdown and HTML."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from auth_helpers import key_headers
from psycopg_pool import AsyncConnectionPool
from review_support import Ctx, cycle_started, open_ctx
from temporalio.testing import WorkflowEnvironment

from peerlearn import eventstore
from peerlearn.access import SYSTEM
from peerlearn.events import EventType
from peerlearn.readside.report import ReviewPath, build_report, render_html, render_markdown

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    async with open_ctx(temporal_env, pool, database_url) as c:
        yield c


async def test_report_shows_recommendation_action_done_per_host(ctx: Ctx) -> None:
    pid, cid = "p-" + uuid.uuid4().hex[:8], "c-" + uuid.uuid4().hex[:8]
    body = {
        "id": pid, "name": "Green peers", "time_zone": "Europe/Stockholm",
        "partners": [{"id": "vaxa", "name": "Växa", "country": "SE"},
                     {"id": "lodz", "name": "Łódź", "country": "PL"},
                     {"id": "chem", "name": "Chemnitz", "country": "DE"}],
    }  # fmt: skip
    assert (await ctx.client.post("/v1/programmes", json=body)).status_code == 201

    def visit(mid: str, host: str, days_ago: int) -> dict[str, object]:
        start = NOW - timedelta(days=days_ago)
        return {
            "meeting_id": mid, "kind": "site_visit", "title": mid, "host": host,
            "format": "on_site", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=8)).isoformat(),
            "topics": [], "target_groups": [], "participants": [],
        }  # fmt: skip

    await eventstore.append_event(
        ctx.pool, stream_id=cid, type=EventType.CYCLE_STARTED,
        payload=cycle_started(
            pid, cid, ["vaxa", "lodz", "chem"], NOW + timedelta(days=100),
            [visit("v-vaxa", "vaxa", 40), visit("v-lodz", "lodz", 20)],
            phase="kickoff", imported=True,
        ),
        idempotency_key=f"{cid}:1", occurred_at=NOW - timedelta(days=90),
    )  # fmt: skip
    recs = [  # (meeting, author, text): the peers' recommendations, any language
        ("v-vaxa", "lodz", "Warto wprowadzić program mentorski dla MŚP."),
        ("v-vaxa", "chem", "Ein gemeinsames Datenportal für die Mitglieder."),
        ("v-lodz", "vaxa", "Bjud in fler småföretag till workshoparna."),
    ]
    async with ctx.pool.connection() as conn:
        for i, (mid, org, text) in enumerate(recs):
            await conn.execute(
                "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                " meeting_id, organisation_id, text, language, kind, content_hash)"
                " VALUES (%s, %s, 0, %s, %s, %s, %s, %s, 'xx', 'recommendation', %s)",
                (f"{cid}-s{i}", f"{cid}-n{i}", pid, cid, mid, org, text, f"h{cid}{i}"),
            )
    base = f"/v1/cycles/{cid}/action-items"
    host = key_headers(ctx.database_url, "partner", [pid], organisation="vaxa")
    r = await ctx.client.post(
        base,
        json={"owner": "vaxa", "what": "Mentoring for SMEs",
              "recommendation_statement_id": f"{cid}-s0"},
        headers=host,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = await ctx.client.patch(f"{base}/{r.json()['id']}", json={"status": "done"}, headers=host)
    assert r.status_code == 200
    r = await ctx.client.post(base, json={"owner": "vaxa", "what": "A data portal"}, headers=host)
    assert r.status_code == 201

    async with ctx.pool.connection() as conn:
        report = await build_report(conn, SYSTEM, cycle_id=cid)
    assert report.review_path == [
        ReviewPath("lodz", "Łódź", 1, 0, 0, 0, 0, 0),
        ReviewPath("vaxa", "Växa", 2, 1, 1, 0, 1, 0),
        ReviewPath("*", "All hosts", 3, 1, 1, 0, 1, 0),
    ]
    md = render_markdown(report)
    assert "## From recommendation to action" in md
    assert "| Växa | 2 | 1 | 1 | 0 | 1 | 0 |" in md
    assert "| All hosts | 3 | 1 | 1 | 0 | 1 | 0 |" in md
    assert "<td>Växa</td><td>2</td><td>1</td>" in render_html(report)
    assert report.to_json()["review_path"][1]["done"] == 1
